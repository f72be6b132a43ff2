package sqlite

import (
	"context"
	sqldriver "database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/queuesgo/queues/driver"
	migfiles "github.com/queuesgo/queues/internal/migrations"
)

// migrationFiles holds the versioned schema migrations, applied in file-name
// order. A version is the file name without ".sql" (e.g.
// "0001_create_queue_tasks").
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// embedded is the schema migrations of this build.
var embedded = migfiles.Embedded{FS: migrationFiles, Dir: "migrations"}

// migration is one embedded, versioned SQL file.
type migration = migfiles.Migration

// Versions lists the schema versions embedded in this build, oldest first.
func Versions() []string { return embedded.Versions() }

// ErrSchemaTooNew is matched by the error Open and Migrate return for a file
// whose schema has versions this build does not know (it was migrated by a
// newer version of this package).
var ErrSchemaTooNew = errors.New("sqlite: database schema is newer than this build")

// checkKnown returns the embedded migrations, or ErrSchemaTooNew when applied
// holds a version that is not embedded.
func checkKnown(applied []string) ([]migration, error) {
	return embedded.Check(applied, ErrSchemaTooNew, "upgrade the program that opens it")
}

// appliedOn reads the applied versions (none when the ledger table does not
// exist yet).
func appliedOn(d *dconn) ([]string, error) {
	exists := false
	err := d.query(`SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'queue_migration'`, nil,
		func([]sqldriver.Value) error { exists = true; return nil })
	if err != nil || !exists {
		return nil, err
	}
	var out []string
	err = d.query(`SELECT version FROM queue_migration ORDER BY version`, nil, func(v []sqldriver.Value) error {
		s, err := valString(v[0])
		out = append(out, s)
		return err
	})
	return out, err
}

// appliedVersions reads the applied versions through the writer connection.
func (w *writer) appliedVersions(ctx context.Context) ([]string, error) {
	var out []string
	err := w.doExclusive(ctx, func(d *dconn) error {
		return retryBusy(ctx, func() error {
			var err error
			out, err = appliedOn(d)
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: read schema versions: %w", err)
	}
	return out, nil
}

// migrate applies the pending embedded migrations, each in its own
// BEGIN IMMEDIATE transaction together with its queue_migration row. A
// migration another process applied meanwhile is skipped.
func (w *writer) migrate(ctx context.Context, dryRun bool) (driver.MigrateReport, error) {
	var rep driver.MigrateReport
	err := w.doExclusive(ctx, func(d *dconn) error {
		var applied []string
		if err := retryBusy(ctx, func() error {
			var err error
			applied, err = appliedOn(d)
			return err
		}); err != nil {
			return fmt.Errorf("sqlite: read schema versions: %w", err)
		}
		ms, err := checkKnown(applied)
		if err != nil {
			return err
		}
		var pending []migration
		for _, m := range ms {
			if !slices.Contains(applied, m.Version) {
				pending = append(pending, m)
			}
		}
		if dryRun {
			rep.Applied = applied
			for _, m := range pending {
				rep.Pending = append(rep.Pending, m.Version)
			}
			return nil
		}
		for _, m := range pending {
			did, err := applyMigration(ctx, d, m, w.b.now())
			if err != nil {
				return err
			}
			if did {
				rep.AppliedNow = append(rep.AppliedNow, m.Version)
			}
		}
		rep.Applied, err = appliedOn(d)
		if err != nil {
			return err
		}
		_, err = checkKnown(rep.Applied)
		return err
	})
	if rep.Applied == nil {
		rep.Applied = []string{}
	}
	if rep.AppliedNow == nil {
		rep.AppliedNow = []string{}
	}
	if rep.Pending == nil {
		rep.Pending = []string{}
	}
	return rep, err
}

// applyMigration applies m in one transaction unless it is already applied.
func applyMigration(ctx context.Context, d *dconn, m migration, now time.Time) (bool, error) {
	if err := retryBusy(ctx, func() error {
		_, err := d.exec("BEGIN IMMEDIATE")
		return err
	}); err != nil {
		return false, fmt.Errorf("sqlite: migration %s: begin: %w", m.Version, err)
	}
	rollback := func(err error) (bool, error) {
		_, _ = d.exec("ROLLBACK")
		return false, fmt.Errorf("sqlite: migration %s: %w", m.Version, err)
	}
	applied, err := appliedOn(d)
	if err != nil {
		return rollback(err)
	}
	if slices.Contains(applied, m.Version) {
		_, err := d.exec("COMMIT")
		return false, err
	}
	if err := d.script(m.SQL); err != nil {
		return rollback(err)
	}
	if _, err := d.exec(`INSERT INTO queue_migration (version, applied_at) VALUES (?, ?)`, m.Version, micros(now)); err != nil {
		return rollback(err)
	}
	if _, err := d.exec("COMMIT"); err != nil {
		return rollback(err)
	}
	return true, nil
}

var _ driver.Migrator = (*Backend)(nil)

// Migrate applies the embedded schema migrations that the file lacks (each
// in one transaction, recorded in queue_migration), or with opts.DryRun only
// reports them. It connects when the backend is not open yet. A file that
// holds a version this build does not know is refused with an error matching
// ErrSchemaTooNew.
func (b *Backend) Migrate(ctx context.Context, opts driver.MigrateOptions) (driver.MigrateReport, error) {
	if err := ctx.Err(); err != nil {
		return driver.MigrateReport{}, err
	}
	b.mu.Lock()
	if err := b.connect(ctx); err != nil {
		b.mu.Unlock()
		return driver.MigrateReport{}, err
	}
	w := b.w
	b.mu.Unlock()
	return w.migrate(ctx, opts.DryRun)
}
