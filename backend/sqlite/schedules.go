package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/queuesgo/queues/driver"
)

var _ driver.SchedulePauser = (*Backend)(nil)

// PauseSchedule inserts the queue_schedule_pause row of name with since =
// the backend clock; a row already there keeps its since.
func (b *Backend) PauseSchedule(ctx context.Context, name string) error {
	if err := driver.CheckScheduleName(ctx, name); err != nil {
		return err
	}
	wr, _, err := b.handles()
	if err != nil {
		return err
	}
	err = wr.do(ctx, false, func(tx *wtx) error {
		_, err := tx.exec(`INSERT INTO queue_schedule_pause (name, since) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`,
			name, micros(b.now()))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: pause schedule: %w", err)
	}
	return nil
}

// ResumeSchedule deletes the queue_schedule_pause row of name and reports
// whether there was one.
func (b *Backend) ResumeSchedule(ctx context.Context, name string) (bool, error) {
	if err := driver.CheckScheduleName(ctx, name); err != nil {
		return false, err
	}
	wr, _, err := b.handles()
	if err != nil {
		return false, err
	}
	var removed bool
	err = wr.do(ctx, false, func(tx *wtx) error {
		n, err := tx.exec(`DELETE FROM queue_schedule_pause WHERE name = ?`, name)
		removed = n > 0
		return err
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: resume schedule: %w", err)
	}
	return removed, nil
}

// PausedSchedules reads every pause in name order (BINARY collation:
// byte-wise) on the reader pool.
func (b *Backend) PausedSchedules(ctx context.Context) ([]driver.SchedulePause, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := []driver.SchedulePause{}
	err := b.readRows(ctx, `SELECT name, since FROM queue_schedule_pause ORDER BY name`, nil,
		func(rows *sql.Rows) error {
			var (
				p     driver.SchedulePause
				since int64
			)
			if err := rows.Scan(&p.Name, &since); err != nil {
				return err
			}
			p.Since = fromMicros(since)
			// A busy retry reads the rows again from the first one: the
			// order is ascending, so a row not after the last kept one
			// starts the listing over.
			if n := len(out); n > 0 && p.Name <= out[n-1].Name {
				out = out[:0]
			}
			out = append(out, p)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("sqlite: paused schedules: %w", err)
	}
	return out, nil
}
