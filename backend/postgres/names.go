package postgres

import (
	"crypto/sha1"
	"encoding/hex"
	"hash/fnv"

	"github.com/jackc/pgx/v5"
)

// maxIdent is PostgreSQL's identifier limit in bytes (NAMEDATALEN-1).
const maxIdent = 63

// names holds the rendered, quoted SQL names of one schema and prefix.
type names struct {
	schema string // raw schema name ("" = search_path)
	prefix string

	task        string // quoted, schema-qualified
	reservation string
	maintenance string
	migration   string
	events      string
	worker      string
	pause       string

	taskRaw string // unquoted table name (no schema), for catalog lookups
}

func newNames(schema, prefix string) names {
	n := names{schema: schema, prefix: prefix}
	n.task = n.table("queue_task")
	n.reservation = n.table("queue_task_reservation")
	n.maintenance = n.table("queue_maintenance")
	n.migration = n.table("queue_migration")
	n.events = n.table("queue_task_event_history")
	n.worker = n.table("queue_worker")
	n.pause = n.table("queue_schedule_pause")
	n.taskRaw = shorten(prefix + "queue_task")
	return n
}

// shorten keeps name within 63 bytes: a longer one keeps its first 54 bytes
// and gets "_" plus the first 8 hex digits of its SHA-1.
func shorten(name string) string {
	if len(name) <= maxIdent {
		return name
	}
	sum := sha1.Sum([]byte(name))
	return name[:maxIdent-9] + "_" + hex.EncodeToString(sum[:])[:8]
}

// table renders the quoted, schema-qualified name of base with the prefix.
func (n names) table(base string) string {
	name := shorten(n.prefix + base)
	if n.schema == "" {
		return pgx.Identifier{name}.Sanitize()
	}
	return pgx.Identifier{n.schema, name}.Sanitize()
}

// index renders the quoted (unqualified) name of an index.
func (n names) index(base string) string {
	return pgx.Identifier{shorten(n.prefix + base)}.Sanitize()
}

// schemaLabel names the schema in messages.
func (n names) schemaLabel() string {
	s := n.schema
	if s == "" {
		s = "(search_path)"
	}
	if n.prefix != "" {
		return s + " with table prefix " + n.prefix
	}
	return s
}

// lockKey is the advisory-lock key that serializes migrations of this
// schema and prefix.
func (n names) lockKey() int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("queues-migrate\x00" + n.schema + "\x00" + n.prefix))
	return int64(h.Sum64())
}
