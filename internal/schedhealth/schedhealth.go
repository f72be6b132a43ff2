// Package schedhealth answers whether the scheduler is firing, for
// `queues scheduler-health` and GET /api/scheduler-health: a completion of
// the scheduler canary (queues.SchedulerCanaryTask) within the last N
// minutes says it is.
package schedhealth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/queuesgo/queues"
)

const (
	// DefaultMinutes is the window when none is given.
	DefaultMinutes = 5
	// MaxMinutes bounds the window: 366 days, the furthest ahead a record
	// may be scheduled.
	MaxMinutes = 366 * 24 * 60
)

// ErrNotRegistered reports that the service's registry lacks the canary,
// so its completions would say nothing about this deployment.
var ErrNotRegistered = errors.New("the scheduler canary " + queues.SchedulerCanaryTask + " is not registered")

// Report is the answer of Check.
type Report struct {
	// Healthy is true when the canary completed within the window.
	Healthy bool `json:"healthy"`
	// Canary is the canary's task name.
	Canary string `json:"canary"`
	// LastCompletedAt is the newest completion within the window, nil when
	// there is none.
	LastCompletedAt *time.Time `json:"last_completed_at"`
	// Minutes is the window's length.
	Minutes int `json:"minutes"`
	// Since is the window's start: now minus Minutes.
	Since time.Time `json:"since"`
}

// CheckMinutes refuses a window outside 1..MaxMinutes.
func CheckMinutes(minutes int) error {
	if minutes < 1 || minutes > MaxMinutes {
		return fmt.Errorf("minutes must be 1..%d, got %d", MaxMinutes, minutes)
	}
	return nil
}

// Check reads the newest completion of the canary since now − minutes. It
// returns ErrNotRegistered when svc's registry lacks the canary, before it
// asks the store anything.
func Check(ctx context.Context, svc *queues.Service, minutes int, now time.Time) (Report, error) {
	if err := CheckMinutes(minutes); err != nil {
		return Report{}, err
	}
	if r := svc.Registry(); r == nil || !r.Has(queues.SchedulerCanaryTask) {
		return Report{}, ErrNotRegistered
	}
	rep := Report{Canary: queues.SchedulerCanaryTask, Minutes: minutes,
		Since: now.Add(-time.Duration(minutes) * time.Minute).UTC()}
	recs, err := svc.Backend().ListCompletedByTask(ctx, queues.SchedulerCanaryTask, rep.Since, 1)
	if err != nil {
		return Report{}, fmt.Errorf("list canary completions: %w", err)
	}
	if len(recs) > 0 && !recs[0].CompletedAt.IsZero() {
		at := recs[0].CompletedAt.UTC()
		rep.Healthy, rep.LastCompletedAt = true, &at
	}
	return rep, nil
}
