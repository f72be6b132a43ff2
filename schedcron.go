package queues

import (
	"time"
)

// cronSchedule is a parsed cron expression: next is the first matching
// local minute in loc strictly after after, in UTC (false when nothing
// matches within the search bound).
type cronSchedule interface {
	next(after time.Time, loc *time.Location) (time.Time, bool)
}

// parseCron parses a five-field cron expression.
func parseCron(expr string) (cronSchedule, error) {
	return nil, configErr("Cron", "cron schedules are not available yet in this build")
}
