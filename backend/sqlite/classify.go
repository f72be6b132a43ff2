package sqlite

import (
	"database/sql"
	"errors"

	"github.com/queuesgo/queues/driver"
	sqlite3 "modernc.org/sqlite/lib"
)

var _ driver.ErrorClassifier = (*Backend)(nil)

// ClassifyError recognises SQLite result codes (driver.ErrorClassifier):
// a lock another connection or process holds past busy_timeout (BUSY,
// LOCKED) is transient; a corrupt or foreign file (CORRUPT, NOTADB), a full
// disk, a file that cannot be opened or written, or a closed database is
// permanent; a value larger than SQLite holds (TOOBIG) is invalid data. It
// returns driver.ClassUnknown for anything else, which driver.Classify
// hands on to driver.DefaultClassify.
func (b *Backend) ClassifyError(err error) driver.ErrorClass { return classifySQLiteError(err) }

func classifySQLiteError(err error) driver.ErrorClass {
	if err == nil {
		return driver.ClassUnknown
	}
	var ce interface{ Code() int }
	if errors.As(err, &ce) {
		switch ce.Code() & 0xff { // the primary result code of an extended one
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_NOMEM,
			sqlite3.SQLITE_INTERRUPT, sqlite3.SQLITE_SCHEMA:
			return driver.ClassTransient
		case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR,
			sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH,
			sqlite3.SQLITE_NOLFS:
			return driver.ClassPermanent
		case sqlite3.SQLITE_TOOBIG, sqlite3.SQLITE_MISMATCH, sqlite3.SQLITE_RANGE:
			return driver.ClassInvalidData
		}
		return driver.ClassUnknown
	}
	if errors.Is(err, sql.ErrConnDone) {
		return driver.ClassPermanent
	}
	return driver.ClassUnknown
}
