package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"strings"
	"text/template"

	"github.com/queuesgo/queues/driver"
	migfiles "github.com/queuesgo/queues/internal/migrations"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// migrationFiles holds the versioned schema migrations, applied in file-name
// order. A version is the file name without ".sql".
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// embedded is the schema migrations of this build.
var embedded = migfiles.Embedded{FS: migrationFiles, Dir: "migrations"}

// migration is one embedded, versioned SQL file.
type migration = migfiles.Migration

// Versions lists the schema versions embedded in this build, oldest first.
func Versions() []string { return embedded.Versions() }

// render expands a migration template for the backend's schema and prefix.
func (n names) render(m migration) (string, error) {
	t, err := template.New(m.Version).Funcs(template.FuncMap{
		"table": n.table,
		"index": n.index,
	}).Parse(m.SQL)
	if err != nil {
		return "", fmt.Errorf("postgres: migration %s: %w", m.Version, err)
	}
	var sb strings.Builder
	if err := t.Execute(&sb, nil); err != nil {
		return "", fmt.Errorf("postgres: migration %s: %w", m.Version, err)
	}
	return sb.String(), nil
}

// MigrationSQL returns the SQL of every embedded migration rendered for
// this backend's schema and table prefix, for adopters who apply schema
// changes with their own tooling (they must also record each version in the
// queue_migration table, or Open refuses the schema).
func (b *Backend) MigrationSQL() (map[string]string, error) {
	ms, err := embedded.Load()
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(ms))
	for _, m := range ms {
		s, err := b.n.render(m)
		if err != nil {
			return nil, err
		}
		out[m.Version] = s
	}
	return out, nil
}

// checkKnown returns the embedded migrations, or an error matching
// ErrSchemaTooNew when applied holds a version that is not embedded.
func checkKnown(applied []string) ([]migration, error) {
	return embedded.Check(applied, ErrSchemaTooNew, "upgrade the program")
}

// appliedVersions reads the ledger; a missing ledger (or schema) means none.
func (b *Backend) appliedVersions(ctx context.Context, q txRunner) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT version FROM `+b.n.migration+` ORDER BY version`)
	if err != nil {
		return nil, b.ledgerErr(err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, b.ledgerErr(err)
	}
	return vs, nil
}

func (b *Backend) ledgerErr(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "3F000") {
		return nil
	}
	return fmt.Errorf("postgres: read schema versions: %w", err)
}

var _ driver.Migrator = (*Backend)(nil)

// Migrate applies the embedded migrations that the schema lacks, all in one
// transaction under a transaction-scoped advisory lock (so concurrent
// migrators serialize), creating the schema and the queue_migration ledger
// when missing: Options.Schema, or without it the first schema of the
// connection's search_path when none of them exists. With opts.DryRun it only reports the pending versions. It
// works before Open and never starts listeners. A schema holding versions
// this build does not know is refused with an error matching
// ErrSchemaTooNew.
func (b *Backend) Migrate(ctx context.Context, opts driver.MigrateOptions) (driver.MigrateReport, error) {
	rep := driver.MigrateReport{Applied: []string{}, AppliedNow: []string{}, Pending: []string{}}
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	if opts.DryRun {
		applied, err := b.appliedVersions(ctx, b.pool)
		if err != nil {
			return rep, err
		}
		ms, err := checkKnown(applied)
		if err != nil {
			return rep, err
		}
		rep.Applied = append(rep.Applied, applied...)
		for _, m := range ms {
			if !containsStr(applied, m.Version) {
				rep.Pending = append(rep.Pending, m.Version)
			}
		}
		return rep, nil
	}
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, b.n.lockKey()); err != nil {
			return err
		}
		schema, err := b.schemaToCreate(ctx, tx)
		if err != nil {
			return err
		}
		if schema != "" {
			if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{schema}.Sanitize()); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+b.n.migration+` (
    version    text        NOT NULL PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
			return err
		}
		applied, err := b.appliedVersions(ctx, tx)
		if err != nil {
			return err
		}
		ms, err := checkKnown(applied)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if containsStr(applied, m.Version) {
				continue
			}
			sql, err := b.n.render(m)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, sql); err != nil {
				return fmt.Errorf("migration %s: %w", m.Version, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO `+b.n.migration+` (version) VALUES ($1)`, m.Version); err != nil {
				return fmt.Errorf("migration %s: record version: %w", m.Version, err)
			}
			rep.AppliedNow = append(rep.AppliedNow, m.Version)
		}
		rep.Applied, err = b.appliedVersions(ctx, tx)
		return err
	})
	if err != nil {
		rep.AppliedNow = []string{}
		if errors.Is(err, ErrSchemaTooNew) {
			return rep, err
		}
		return rep, fmt.Errorf("postgres: migrate %s: %w", b.n.schemaLabel(), err)
	}
	if rep.Applied == nil {
		rep.Applied = []string{}
	}
	return rep, nil
}

// schemaToCreate names the schema Migrate creates when missing: the
// configured one, else — when no schema of the connection's search_path
// exists, so unqualified tables would have nowhere to go — the first
// search_path entry other than "$user". It returns "" when the tables
// have a home already.
func (b *Backend) schemaToCreate(ctx context.Context, tx pgx.Tx) (string, error) {
	if b.n.schema != "" {
		return b.n.schema, nil
	}
	var cur *string
	if err := tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&cur); err != nil {
		return "", err
	}
	if cur != nil {
		return "", nil
	}
	var path string
	if err := tx.QueryRow(ctx, `SELECT current_setting('search_path')`).Scan(&path); err != nil {
		return "", err
	}
	return firstSearchPathSchema(path), nil
}

// firstSearchPathSchema returns the first schema named in a search_path
// setting, skipping "$user" and unquoting a quoted name.
func firstSearchPathSchema(path string) string {
	for _, item := range splitSearchPath(path) {
		if item == "$user" || item == "" {
			continue
		}
		return item
	}
	return ""
}

// splitSearchPath splits a search_path value at commas outside double
// quotes, trims the blanks around each name and unquotes a quoted one ("" inside
// quotes is one quote).
func splitSearchPath(path string) []string {
	var out []string
	i := 0
	for i <= len(path) {
		for i < len(path) && (path[i] == ' ' || path[i] == '\t') {
			i++
		}
		var name strings.Builder
		if i < len(path) && path[i] == '"' {
			for i++; i < len(path); i++ {
				if path[i] == '"' {
					if i+1 < len(path) && path[i+1] == '"' {
						name.WriteByte('"')
						i++
						continue
					}
					i++
					break
				}
				name.WriteByte(path[i])
			}
			for i < len(path) && path[i] != ',' {
				i++
			}
		} else {
			j := strings.IndexByte(path[i:], ',')
			if j < 0 {
				j = len(path) - i
			}
			name.WriteString(strings.TrimSpace(path[i : i+j]))
			i += j
		}
		out = append(out, name.String())
		i++ // the comma
	}
	return out
}
