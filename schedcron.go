package queues

import (
	"fmt"
	"time"

	"github.com/queuesgo/queues/internal/cron"
)

// cronSchedule is a parsed cron expression: next is the first matching
// local minute in loc strictly after after, in UTC (false when nothing
// matches within the search bound).
type cronSchedule interface {
	next(after time.Time, loc *time.Location) (time.Time, bool)
}

type cronExpr struct{ e *cron.Expr }

func (c cronExpr) next(after time.Time, loc *time.Location) (time.Time, bool) {
	t, ok := c.e.Next(after, loc)
	return t.UTC(), ok
}

// parseCron parses a five-field cron expression. A rejected expression is
// an error matching ErrConfig that wraps the parser's *cron.CronError
// (which names the field and the problem).
func parseCron(expr string) (cronSchedule, error) {
	e, err := cron.Parse(expr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return cronExpr{e}, nil
}
