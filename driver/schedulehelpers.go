package driver

import (
	"context"

	"github.com/queuesgo/queues/queuestype"
)

// MaxScheduleName is the longest schedule name a SchedulePauser keeps, in
// bytes: room for a task name and a schedule name of their own.
const MaxScheduleName = 1024

// CheckScheduleName starts a SchedulePauser call that names a schedule: it
// returns ctx's error when ctx has ended, and a *queuestype.LimitError for a
// name that is empty, longer than MaxScheduleName, not valid UTF-8 or holds
// a control character (PostgreSQL refuses NUL in text; refusing it
// everywhere keeps the stores alike).
func CheckScheduleName(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return queuestype.CheckText("schedule", name, MaxScheduleName)
}
