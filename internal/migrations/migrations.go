// Package migrations loads the versioned SQL migrations that the SQL backends
// embed: one file per version, named "<version>.sql", applied in version order.
package migrations

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// Migration is one versioned SQL file.
type Migration struct {
	Version string // the file name without ".sql", e.g. "0001_create_queue_tasks"
	SQL     string
}

// Load reads every "*.sql" file of dir in fsys, sorted by version.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		body, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: strings.TrimSuffix(name, ".sql"), SQL: string(body)})
	}
	slices.SortFunc(out, func(a, b Migration) int { return strings.Compare(a.Version, b.Version) })
	return out, nil
}

// Versions lists the versions of ms in order.
func Versions(ms []Migration) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Version
	}
	return out
}

// Embedded is the migrations a store embeds: the "*.sql" files of Dir in FS.
type Embedded struct {
	FS  fs.FS
	Dir string
}

// Load reads the migrations, sorted by version.
func (e Embedded) Load() ([]Migration, error) { return Load(e.FS, e.Dir) }

// Versions lists the versions, oldest first (none when they cannot be read).
func (e Embedded) Versions() []string {
	ms, _ := e.Load()
	return Versions(ms)
}

// Check returns the migrations when every version of applied is among
// them. Otherwise the schema was written by a newer build: the error wraps
// tooNew, names the unknown versions and the latest known one, and ends
// with advice.
func (e Embedded) Check(applied []string, tooNew error, advice string) ([]Migration, error) {
	ms, err := e.Load()
	if err != nil {
		return nil, err
	}
	known := make(map[string]bool, len(ms))
	for _, m := range ms {
		known[m.Version] = true
	}
	var unknown []string
	for _, v := range applied {
		if !known[v] {
			unknown = append(unknown, v)
		}
	}
	if len(unknown) == 0 {
		return ms, nil
	}
	latest := "none"
	if len(ms) > 0 {
		latest = ms[len(ms)-1].Version
	}
	return nil, fmt.Errorf("%w: it has version(s) %s that this build does not know (latest known: %s); %s",
		tooNew, strings.Join(unknown, ", "), latest, advice)
}
