// Package migrations loads the versioned SQL migrations that the SQL backends
// embed: one file per version, named "<version>.sql", applied in version order.
package migrations

import (
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
