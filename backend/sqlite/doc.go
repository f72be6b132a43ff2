// Package sqlite is the durable, embedded SQLite queue backend (the
// quickstart default). Numbers and design notes follow.
package sqlite
