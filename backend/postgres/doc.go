// Package postgres is the PostgreSQL queue backend on jackc/pgx/v5.
package postgres
