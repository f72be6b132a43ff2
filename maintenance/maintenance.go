// Package maintenance holds the vocabulary of a maintenance run
// (queues.Service.RunMaintenance): its phases, the run's options and the
// report it returns, with the report's JSON and text forms that
// `queues run-maintenance` prints.
//
// A run takes the fleet's maintenance lock, then runs the selected phases
// in a fixed order: external (reconcile external executions), stale
// (recover records whose heartbeat went stale), terminal (delete terminal
// records past their retention) and events (delete event history past its
// retention). The events phase is always reported as skipped for now: the
// engine keeps no event history yet, and the phase activates once it does.
package maintenance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// Phase names one phase of a run.
type Phase string

// Phases, in the order a run takes them.
const (
	External Phase = "external"
	Stale    Phase = "stale"
	Terminal Phase = "terminal"
	Events   Phase = "events"
)

// Phases lists every phase in run order.
var Phases = []Phase{External, Stale, Terminal, Events}

// ParsePhase returns the phase named s, or an error listing the phases.
func ParsePhase(s string) (Phase, error) {
	for _, p := range Phases {
		if string(p) == s {
			return p, nil
		}
	}
	return "", fmt.Errorf("unknown maintenance phase %q (want external, stale, terminal or events)", s)
}

// Outcome is how a run ended.
type Outcome string

// Outcomes. A run with any failed phase failed; else one with a partial
// phase is partial; else it completed (also when nothing was enabled).
// AlreadyRunning: another run held the lock, and this one did nothing.
const (
	OutcomeCompleted      Outcome = "completed"
	OutcomePartial        Outcome = "partial"
	OutcomeFailed         Outcome = "failed"
	OutcomeAlreadyRunning Outcome = "already_running"
)

// Status is how one phase ended.
type Status string

// Phase statuses. Skipped: the phase is disabled, or the run did not get
// the lock. Partial: the time budget ran out before the phase started, or
// while it still had work. Failed: a store call failed (Error says how).
const (
	StatusSkipped   Status = "skipped"
	StatusCompleted Status = "completed"
	StatusPartial   Status = "partial"
	StatusFailed    Status = "failed"
)

// Options narrows one run.
type Options struct {
	// Phases selects phases (run in the fixed order whatever the order
	// here); empty = all of them.
	Phases []Phase
	// Now is the run's clock (cutoffs, the budget and the durations
	// reported); nil → time.Now.
	Now func() time.Time
}

// PhaseReport is what one phase did.
type PhaseReport struct {
	Phase    Phase
	Status   Status
	Changed  int
	Duration time.Duration
	// Error is "" or "maintenance_phase_failed:<kind>" (see ErrorKind).
	Error string
}

// Report is what a run did. Its JSON form (MarshalJSON) and text form
// (WriteText) are stable: tools parse them.
type Report struct {
	Outcome  Outcome
	Acquired bool
	Duration time.Duration
	Phases   []PhaseReport
}

// ms renders d as milliseconds with one decimal ("0.0", "12.3").
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64)
}

// MarshalJSON writes the report compactly with its keys in a fixed order:
// {"outcome":…,"acquired":…,"duration_ms":…,"phases":[{"phase":…,
// "status":…,"changed":…,"duration_ms":…,"error":…},…]}, durations in
// milliseconds with one decimal and error null when none.
func (r Report) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"outcome":`)
	b.WriteString(strconv.Quote(string(r.Outcome)))
	b.WriteString(`,"acquired":`)
	b.WriteString(strconv.FormatBool(r.Acquired))
	b.WriteString(`,"duration_ms":`)
	b.WriteString(ms(r.Duration))
	b.WriteString(`,"phases":[`)
	for i, p := range r.Phases {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"phase":`)
		b.WriteString(strconv.Quote(string(p.Phase)))
		b.WriteString(`,"status":`)
		b.WriteString(strconv.Quote(string(p.Status)))
		b.WriteString(`,"changed":`)
		b.WriteString(strconv.Itoa(p.Changed))
		b.WriteString(`,"duration_ms":`)
		b.WriteString(ms(p.Duration))
		b.WriteString(`,"error":`)
		if p.Error == "" {
			b.WriteString("null")
		} else {
			b.WriteString(strconv.Quote(p.Error))
		}
		b.WriteByte('}')
	}
	b.WriteString("]}")
	return b.Bytes(), nil
}

// WriteText writes the report for people: outcome, acquired and
// duration_ms lines, then one row per phase under the header Phase (10
// wide), Status (12), Changed (9, right-aligned), Duration(ms) (14,
// right-aligned), two spaces and Error ("-" when none).
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "outcome: %s\nacquired: %t\nduration_ms: %s\n", r.Outcome, r.Acquired, ms(r.Duration))
	fmt.Fprintf(&b, "%-10s%-12s%9s%14s  %s\n", "Phase", "Status", "Changed", "Duration(ms)", "Error")
	for _, p := range r.Phases {
		e := p.Error
		if e == "" {
			e = "-"
		}
		fmt.Fprintf(&b, "%-10s%-12s%9d%14s  %s\n", p.Phase, p.Status, p.Changed, ms(p.Duration), e)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Error kinds of a failed phase (PhaseReport.Error is
// "maintenance_phase_failed:" + kind), and of the CLI's lifecycle errors.
const (
	KindConfig   = "config"
	KindConnect  = "connect"
	KindTimeout  = "timeout"
	KindStorage  = "storage"
	KindInternal = "internal"
)

// ErrorKind maps an error a store call of b returned to a stable kind:
// config (a configuration error), timeout (a deadline passed), connect (the
// store could not be reached), storage (the store refused or is broken),
// internal (anything else).
func ErrorKind(b driver.Backend, err error) string {
	switch {
	case errors.Is(err, queuestype.ErrConfig):
		return KindConfig
	case errors.Is(err, context.DeadlineExceeded):
		return KindTimeout
	}
	switch driver.Classify(b, err) {
	case driver.ClassTransient:
		return KindConnect
	case driver.ClassPermanent, driver.ClassInvalidData:
		return KindStorage
	}
	return KindInternal
}

// PhaseError is PhaseReport.Error for a phase that failed with err.
func PhaseError(b driver.Backend, err error) string {
	return "maintenance_phase_failed:" + ErrorKind(b, err)
}
