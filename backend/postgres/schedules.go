package postgres

import (
	"context"

	"github.com/queuesgo/queues/driver"

	"github.com/jackc/pgx/v5"
)

var _ driver.SchedulePauser = (*Backend)(nil)

// PauseSchedule inserts the queue_schedule_pause row of name with since =
// the database's now(); a row already there keeps its since.
func (b *Backend) PauseSchedule(ctx context.Context, name string) error {
	if err := driver.CheckScheduleName(ctx, name); err != nil {
		return err
	}
	_, err := b.pool.Exec(ctx, `INSERT INTO `+b.n.pause+` (name, since) VALUES ($1, now()) ON CONFLICT (name) DO NOTHING`, name)
	return b.wrap("pause schedule", err)
}

// ResumeSchedule deletes the queue_schedule_pause row of name and reports
// whether there was one.
func (b *Backend) ResumeSchedule(ctx context.Context, name string) (bool, error) {
	if err := driver.CheckScheduleName(ctx, name); err != nil {
		return false, err
	}
	tag, err := b.pool.Exec(ctx, `DELETE FROM `+b.n.pause+` WHERE name = $1`, name)
	if err != nil {
		return false, b.wrap("resume schedule", err)
	}
	return tag.RowsAffected() > 0, nil
}

// PausedSchedules returns every pause in name order (the column's "C"
// collation: byte-wise).
func (b *Backend) PausedSchedules(ctx context.Context) ([]driver.SchedulePause, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rows, err := b.pool.Query(ctx, `SELECT name, since FROM `+b.n.pause+` ORDER BY name`)
	if err != nil {
		return nil, b.wrap("paused schedules", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (driver.SchedulePause, error) {
		var p driver.SchedulePause
		err := row.Scan(&p.Name, &p.Since)
		p.Since = p.Since.UTC()
		return p, err
	})
	if err != nil {
		return nil, b.wrap("paused schedules", err)
	}
	if out == nil {
		out = []driver.SchedulePause{}
	}
	return out, nil
}
