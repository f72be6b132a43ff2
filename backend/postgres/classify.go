package postgres

import (
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/queuesgo/queues/driver"
)

var _ driver.ErrorClassifier = (*Backend)(nil)

// ClassifyError recognises the errors of pgx and of the PostgreSQL server
// (driver.ErrorClassifier): by SQLSTATE when the server answered, else by
// what the client reports about the connection. It returns
// driver.ClassUnknown for anything else, which driver.Classify hands on to
// driver.DefaultClassify (network errors, timeouts).
func (b *Backend) ClassifyError(err error) driver.ErrorClass { return classifyPgError(err) }

func classifyPgError(err error) driver.ErrorClass {
	if err == nil {
		return driver.ClassUnknown
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return classifySQLState(pe.Code)
	}
	var ce *pgconn.ConnectError
	switch {
	case pgconn.SafeToRetry(err), pgconn.Timeout(err):
		// Failed before anything reached the server, or timed out.
		return driver.ClassTransient
	case errors.Is(err, pgconn.ErrConnClosed), errors.As(err, &ce):
		// A connection that went away, or a new one that could not be made
		// (refused, reset, the server not up yet). An authentication
		// failure carries a PgError and was classified above.
		return driver.ClassTransient
	}
	return driver.ClassUnknown
}

// classifySQLState classifies a PostgreSQL error code.
func classifySQLState(code string) driver.ErrorClass {
	switch code {
	case "57P01", // admin_shutdown: the server is stopping (a restart, a failover)
		"57P02", // crash_shutdown
		"57P03", // cannot_connect_now: starting up or shutting down
		"57014", // query_canceled (statement_timeout)
		"53300", // too_many_connections
		"53200", // out_of_memory
		"53400", // configuration_limit_exceeded
		"40001", // serialization_failure
		"40P01", // deadlock_detected
		"55P03", // lock_not_available
		"55006", // object_in_use
		"25006", // read_only_sql_transaction: a replica, or a primary demoted by a failover
		"25P04", // transaction_timeout
		"72000": // snapshot_too_old
		return driver.ClassTransient
	case "22P05", // untranslatable_character (a \u0000 in jsonb)
		"22021", // character_not_in_repertoire (a NUL byte in text)
		"54000", // program_limit_exceeded (a value too large to store)
		"54001": // statement_too_complex
		return driver.ClassInvalidData
	case "53100", // disk_full
		"XX001", // data_corrupted
		"XX002", // index_corrupted
		"58030", // io_error
		"42P01", // undefined_table: the schema is missing (migrations not applied)
		"42703", // undefined_column
		"42883", // undefined_function
		"3F000", // invalid_schema_name
		"3D000", // invalid_catalog_name: no such database
		"57P04", // database_dropped
		"42501": // insufficient_privilege
		return driver.ClassPermanent
	}
	switch {
	case strings.HasPrefix(code, "08"): // connection_exception
		return driver.ClassTransient
	case strings.HasPrefix(code, "22"): // data_exception: a value the server refuses
		return driver.ClassInvalidData
	case strings.HasPrefix(code, "28"), // invalid_authorization_specification
		strings.HasPrefix(code, "XX"), // internal_error
		strings.HasPrefix(code, "58"): // system_error
		return driver.ClassPermanent
	}
	return driver.ClassUnknown
}
