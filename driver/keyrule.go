package driver

import (
	"fmt"
	"strings"
	"time"

	"github.com/queuesgo/queues/queuestype"
)

// KeyRule is how long a stored record holding an identity key keeps it
// against a new keyed item: the new item's rule (EnqueueParams.UniqueFor and
// UniqueWhile) decides, never the holder's.
//
// The zero rule is the default lifetime: the key is held while the holder
// is not terminal. Period > 0 holds the key for Period from the holder's
// creation, in whatever status the holder is (so a completed holder still
// deduplicates until the period ends); States limits the statuses in which
// the holder holds the key. Both together hold the key while the holder is
// in States and younger than Period.
type KeyRule struct {
	Period time.Duration
	States []queuestype.Status
}

// RuleOf returns the key rule of a prepared item.
func RuleOf(p *EnqueueParams) KeyRule {
	return KeyRule{Period: p.UniqueFor, States: p.UniqueWhile}
}

// IsZero reports whether r is the default lifetime.
func (r KeyRule) IsZero() bool { return r.Period == 0 && len(r.States) == 0 }

// EffectiveStates returns the statuses in which a holder holds the key
// under r: States when given, every status when only a period is given
// (the period alone decides), else the non-terminal statuses.
func (r KeyRule) EffectiveStates() []queuestype.Status {
	switch {
	case len(r.States) > 0:
		return r.States
	case r.Period > 0:
		return queuestype.AllStatuses
	}
	return []queuestype.Status{queuestype.StatusPending, queuestype.StatusScheduled, queuestype.StatusRunning}
}

// StatesText is EffectiveStates joined with commas, the form the SQL and
// Lua enqueue paths receive.
func (r KeyRule) StatesText() string {
	st := r.EffectiveStates()
	parts := make([]string, len(st))
	for i, s := range st {
		parts[i] = string(s)
	}
	return strings.Join(parts, ",")
}

// PeriodMicros is Period in whole microseconds, the precision every store
// keeps created_at in; 0 means no period.
func (r KeyRule) PeriodMicros() int64 { return r.Period.Microseconds() }

// Holds reports whether a record in status, created at created, still holds
// its key at now (the store's clock) against a new item with rule r. It is
// the one rule every store applies inside its atomic enqueue step; the
// stores that decide in SQL or Lua apply the same terms (status among
// StatesText, and created_at + PeriodMicros > now when a period is given).
func (r KeyRule) Holds(status queuestype.Status, created, now time.Time) bool {
	in := false
	for _, s := range r.EffectiveStates() {
		if s == status {
			in = true
			break
		}
	}
	if !in {
		return false
	}
	if p := r.PeriodMicros(); p > 0 {
		return created.Add(time.Duration(p) * time.Microsecond).After(now)
	}
	return true
}

// checkKeyRule validates the rule of prepared item p (field prefix pre):
// no negative period, known statuses only, and no rule on a forever item
// (its key outlives every record; a period or state set has no meaning
// there). A rule on an unkeyed item is dropped.
func checkKeyRule(pre string, p *EnqueueParams) error {
	if p.Key == "" {
		p.UniqueFor, p.UniqueWhile = 0, nil
		return nil
	}
	if p.UniqueFor < 0 {
		return &queuestype.ConfigError{Field: pre + "unique_for", Problem: "must not be negative"}
	}
	for _, s := range p.UniqueWhile {
		if !s.IsValid() {
			return &queuestype.ConfigError{Field: pre + "unique_while", Problem: fmt.Sprintf("unknown status %q", s)}
		}
	}
	if p.Forever && !RuleOf(p).IsZero() {
		return &queuestype.ConfigError{Field: pre + "unique_for", Problem: "a forever key takes no period or states"}
	}
	return nil
}
