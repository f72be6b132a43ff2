package sqlite_test

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/queuesgo/queues/backend/sqlite"
	"github.com/queuesgo/queues/driver"
)

// codeError carries an SQLite result code the way the driver's errors do,
// for conditions a test cannot provoke (a corrupt file mid-write).
type codeError int

func (e codeError) Error() string { return fmt.Sprintf("sqlite error %d", int(e)) }
func (e codeError) Code() int     { return int(e) }

// TestClassifyError classifies errors as modernc.org/sqlite returns them:
// a write lock held by another connection (busy_timeout 0), a file that
// is not a database, a value too large, a file that cannot be opened.
func TestClassifyError(t *testing.T) {
	dir := t.TempDir()
	b, err := sqlite.Open(filepath.Join(dir, "q.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	open := func(name, query string) *sql.DB {
		db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, name)+query)
		if err != nil {
			t.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		t.Cleanup(func() { _ = db.Close() })
		return db
	}
	type tc struct {
		name string
		err  error
		want driver.ErrorClass
	}
	var cases []tc

	// SQLITE_BUSY: another connection holds the write lock.
	holder := open("busy.db", "?_pragma=busy_timeout(0)")
	if _, err := holder.Exec("CREATE TABLE t (x)"); err != nil {
		t.Fatal(err)
	}
	tx, err := holder.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	waiter := open("busy.db", "?_pragma=busy_timeout(0)")
	_, err = waiter.Exec("INSERT INTO t VALUES (2)")
	_ = tx.Rollback()
	cases = append(cases, tc{"busy", err, driver.ClassTransient})

	// SQLITE_NOTADB: a file of something else.
	if err := os.WriteFile(filepath.Join(dir, "text.db"), []byte("this is not an SQLite database, it is a shopping list"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = open("text.db", "").Exec("SELECT count(*) FROM sqlite_master")
	cases = append(cases, tc{"not a database", err, driver.ClassPermanent})

	// SQLITE_CORRUPT: a file whose table pages were overwritten (a damaged
	// disk, a copy taken mid-write); the schema on page 1 is intact, so
	// the file opens and the damage is met by the first read of the table.
	corrupt := open("corrupt.db", "")
	if _, err := corrupt.Exec("CREATE TABLE t (x TEXT); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 500) INSERT INTO t SELECT printf('%0200d', i) FROM n"); err != nil {
		t.Fatal(err)
	}
	if err := corrupt.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "corrupt.db"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	garbage := make([]byte, st.Size()-4096)
	for i := range garbage {
		garbage[i] = byte(i*7 + i>>8)
	}
	if _, err := f.WriteAt(garbage, 4096); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = open("corrupt.db", "").Exec("SELECT count(*), max(x) FROM t")
	cases = append(cases, tc{"damaged page (database disk image is malformed)", err, driver.ClassPermanent})

	// SQLITE_TOOBIG: longer than SQLite's maximum string or blob length.
	_, err = open("big.db", "").Exec("SELECT zeroblob(2000000000)")
	cases = append(cases, tc{"too big", err, driver.ClassInvalidData})

	// SQLITE_CANTOPEN: a read-only open of a file that does not exist.
	_, err = open("missing/none.db", "?mode=ro").Exec("SELECT 1")
	cases = append(cases, tc{"cannot open", err, driver.ClassPermanent})

	cases = append(cases,
		tc{"locked (SQLITE_LOCKED_SHAREDCACHE)", codeError(6 | 1<<8), driver.ClassTransient},
		tc{"corrupt (SQLITE_CORRUPT)", codeError(11), driver.ClassPermanent},
		tc{"corrupt index (SQLITE_CORRUPT_INDEX)", codeError(11 | 3<<8), driver.ClassPermanent},
		tc{"constraint (SQLITE_CONSTRAINT)", codeError(19), driver.ClassUnknown},
	)
	for _, c := range cases {
		if c.err == nil {
			t.Errorf("%s: no error to classify", c.name)
			continue
		}
		t.Logf("%s: %v", c.name, c.err)
		if got := driver.Classify(b, c.err); got != c.want {
			t.Errorf("%s (%v): %s, want %s", c.name, c.err, got, c.want)
		}
	}
}
