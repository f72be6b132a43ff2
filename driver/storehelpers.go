package driver

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/queuestype"
)

// This file holds helpers for store authors: the errors, defaults, orders
// and option checks every store applies alike.

// FenceLost returns an error matching queuestype.ErrFenceLost for a guarded
// write op on record id whose guard did not hold.
func FenceLost(op string, id uuid.UUID) error {
	return fmt.Errorf("%w: %s %s", queuestype.ErrFenceLost, op, id)
}

// NotFound returns an error matching queuestype.ErrTaskNotFound for id.
func NotFound(id uuid.UUID) error {
	return fmt.Errorf("%w: %s", queuestype.ErrTaskNotFound, id)
}

// MissingForWrite returns the error of a guarded write op on an ID that does
// not exist: the guard did not hold because there is no record, so it
// matches both queuestype.ErrFenceLost and queuestype.ErrTaskNotFound.
func MissingForWrite(op string, id uuid.UUID) error {
	return fmt.Errorf("%w: %s %s: %w", queuestype.ErrFenceLost, op, id, queuestype.ErrTaskNotFound)
}

// IdentityConflict returns the per-item error of a forever Enqueue item whose key
// an earlier, non-forever item of the same call inserts. It matches
// queuestype.ErrIdentityConflict.
func IdentityConflict(key string) error {
	return fmt.Errorf("%w: key %q", queuestype.ErrIdentityConflict, key)
}

// IdentityHeld returns the per-item error of a forever Enqueue item whose key an
// active non-forever record (holder, the record's ID) holds. It matches
// queuestype.ErrIdentityConflict.
func IdentityHeld(key, holder string) error {
	return fmt.Errorf("%w: key %q is held by task %s", queuestype.ErrIdentityConflict, key, holder)
}

// CheckLockArgs starts a Locker.AcquireLock call: it returns ctx's error
// when ctx has ended, and an error matching queuestype.ErrConfig unless ttl
// is positive and token is not empty.
func CheckLockArgs(ctx context.Context, ttl time.Duration, token string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ttl <= 0 {
		return fmt.Errorf("%w: lock ttl must be positive, got %s", queuestype.ErrConfig, ttl)
	}
	if token == "" {
		return fmt.Errorf("%w: lock token must not be empty", queuestype.ErrConfig)
	}
	return nil
}

// CanSettleTo reports whether a Transition may write status to: completed,
// failed, cancelled or pending.
func CanSettleTo(to queuestype.Status) bool {
	switch to {
	case queuestype.StatusCompleted, queuestype.StatusFailed, queuestype.StatusCancelled, queuestype.StatusPending:
		return true
	}
	return false
}

// CheckSettleTo returns nil when t's To is a status a transition may write
// (CanSettleTo), else the per-transition error a store reports for it,
// matching queuestype.ErrConfig.
func CheckSettleTo(t *Transition) error {
	if CanSettleTo(t.To) {
		return nil
	}
	return fmt.Errorf("%w: settle %s: cannot settle a record as %q", queuestype.ErrConfig, t.ID, t.To)
}

// CheckReserve refuses a reservation without a deadline: the record would
// hold the marker but no dispatch_until, so nothing would skip it.
func CheckReserve(p ReserveDispatchParams) error {
	if p.Until.IsZero() {
		return fmt.Errorf("%w: reserve dispatch %s: no reservation deadline (Until)", queuestype.ErrConfig, p.ID)
	}
	return nil
}

// OpenOnce makes a store's Open idempotent: holding mu, it returns nil at
// once when *opened is set, else runs open and sets *opened when open
// succeeds. The store's Close clears *opened (holding mu) so that a later
// Open opens again.
func OpenOnce(mu sync.Locker, opened *bool, open func() error) error {
	mu.Lock()
	defer mu.Unlock()
	if *opened {
		return nil
	}
	if err := open(); err != nil {
		return err
	}
	*opened = true
	return nil
}

// NamespacePattern is the rule a namespace root follows (the rule of
// queues.Config.Namespace): lower-case words of letters and digits joined
// by single underscores, starting with a letter.
var NamespacePattern = regexp.MustCompile(`^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$`)

// ResolveNamespace returns the namespace root a store option names:
// queuestype.DefaultNamespace when ns is empty, else ns when it matches
// NamespacePattern and, with maxLen > 0, is at most maxLen bytes. Anything
// else returns a *queuestype.ConfigError naming field.
func ResolveNamespace(field, ns string, maxLen int) (string, error) {
	if ns == "" {
		return queuestype.DefaultNamespace, nil
	}
	if maxLen > 0 && (!NamespacePattern.MatchString(ns) || len(ns) > maxLen) {
		return "", &queuestype.ConfigError{Field: field,
			Problem: fmt.Sprintf("%q must match %s and be at most %d bytes", ns, NamespacePattern, maxLen)}
	}
	if !NamespacePattern.MatchString(ns) {
		return "", &queuestype.ConfigError{Field: field, Problem: fmt.Sprintf("%q must match %s", ns, NamespacePattern)}
	}
	return ns, nil
}

// Defaults of the limit arguments of Backend and Inspector methods, used
// when the caller passes a limit ≤ 0.
const (
	// DefaultPendingLimit is ListPending's limit.
	DefaultPendingLimit = 100
	// DefaultExpireLimit is ExpireOverdue's limit.
	DefaultExpireLimit = 100
	// DefaultCleanupLimit is CleanupTerminal's limit.
	DefaultCleanupLimit = 100
	// DefaultCompletedLimit is ListCompletedByTask's limit.
	DefaultCompletedLimit = 10
	// DefaultPageLimit is the page size of Inspector.ListTasks.
	DefaultPageLimit = 50
)

// Limit returns n, or def when n ≤ 0.
func Limit(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

// CallLimit starts a store call whose limit ≤ 0 means a default: it returns
// ctx's error when ctx has ended, else Limit(n, def).
func CallLimit(ctx context.Context, n, def int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return Limit(n, def), nil
}

// NoItems starts a store call that returns a list: one result per item of
// n items, or up to n records. done is true when the call returns at once:
// with ctx's error (and a nil list) when ctx has ended, or with an empty,
// non-nil list when n ≤ 0. The caller then returns (empty, err).
func NoItems[T any](ctx context.Context, n int) (empty []T, done bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, true, err
	}
	if n <= 0 {
		return []T{}, true, nil
	}
	return nil, false, nil
}

// NoWork starts a store call over n items, or whose limit n ≤ 0 means
// nothing: it reports true with ctx's error when ctx has ended, true with a
// nil error when n ≤ 0 (the call returns at once, touching nothing), and
// false otherwise.
func NoWork(ctx context.Context, n int) (bool, error) {
	if err := ctx.Err(); err != nil {
		return true, err
	}
	return n <= 0, nil
}

// NewTaskPage builds a ListTasks page from up to limit+1 records read newest
// first: the first limit records are the page, and when there are more,
// NextCursor is the ID of the page's last record. A nil recs gives an
// empty, non-nil Items.
func NewTaskPage(recs []*queuestype.Record, limit int) TaskPage {
	var page TaskPage
	if len(recs) > limit {
		recs = recs[:limit]
		page.NextCursor = recs[limit-1].ID
	}
	if recs == nil {
		recs = []*queuestype.Record{}
	}
	page.Items = recs
	return page
}

// QueuesWithRecords removes from per the queues whose statistics count no
// record, as Inspector.QueueStatistics lists only queues that hold
// records, and returns per.
func QueuesWithRecords(per map[string]queuestype.Statistics) map[string]queuestype.Statistics {
	for q, st := range per {
		if st.Total == 0 {
			delete(per, q)
		}
	}
	return per
}

// CursorTime returns the creation time a UUIDv7 ListTasks cursor carries,
// which places a cursor whose record was deleted. ok is false for any other
// UUID version: such a cursor places nothing.
func CursorTime(cursor uuid.UUID) (t time.Time, ok bool) {
	if cursor.Version() != 7 {
		return time.Time{}, false
	}
	sec, nsec := cursor.Time().UnixTime()
	return time.Unix(sec, nsec).UTC(), true
}

// CompareID orders UUIDs bytewise, as PostgreSQL orders uuid values and as
// their canonical text sorts.
func CompareID(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) }

// ClaimOrder is the claim order as a comparison: priority descending, then
// queued_at, created_at and ID ascending.
func ClaimOrder(a, b *queuestype.Record) int {
	if a.Priority != b.Priority {
		if a.Priority > b.Priority {
			return -1
		}
		return 1
	}
	if c := a.QueuedAt.Compare(b.QueuedAt); c != 0 {
		return c
	}
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	return CompareID(a.ID, b.ID)
}

// StaleOrder is ListStale's order as a comparison: records without a
// heartbeat first (oldest created_at first), then the oldest heartbeat
// first, ties by ID.
func StaleOrder(x, y *queuestype.Record) int {
	xn, yn := x.HeartbeatAt.IsZero(), y.HeartbeatAt.IsZero()
	switch {
	case xn && !yn:
		return -1
	case !xn && yn:
		return 1
	case xn:
		if c := x.CreatedAt.Compare(y.CreatedAt); c != 0 {
			return c
		}
	default:
		if c := x.HeartbeatAt.Compare(y.HeartbeatAt); c != 0 {
			return c
		}
	}
	return CompareID(x.ID, y.ID)
}

// TerminalStatuses lists the terminal statuses in the order CheckCleanup
// returns their cutoffs.
var TerminalStatuses = []queuestype.Status{queuestype.StatusCompleted, queuestype.StatusFailed,
	queuestype.StatusCancelled, queuestype.StatusExpired}

// CleanupCutoff is one cutoff of a CleanupTerminal call: records of
// Status completed before Before are deleted. Task is "" for a default
// cutoff (CleanupParams.Before), which applies to the tasks CleanupParams.ByTask
// does not list; otherwise it is the task whose records it applies to.
type CleanupCutoff struct {
	Task   string
	Status queuestype.Status
	Before time.Time
}

// CheckCleanup starts a CleanupTerminal call: it returns ctx's error when
// ctx has ended, an error matching queuestype.ErrConfig when p.Before or
// p.ByTask names a status that is not terminal, a zero cutoff or an empty
// task name, and otherwise the cutoffs with the limit resolved: first the
// defaults in TerminalStatuses order, then each task of p.ByTask's (tasks
// sorted, statuses in TerminalStatuses order); omitted statuses are left
// out. No cutoffs means nothing to delete.
func CheckCleanup(ctx context.Context, p CleanupParams) ([]CleanupCutoff, int, error) {
	limit, err := CallLimit(ctx, p.Limit, DefaultCleanupLimit)
	if err != nil {
		return nil, 0, err
	}
	check := func(task string, m map[queuestype.Status]time.Time) error {
		for s, t := range m {
			if !s.IsTerminal() {
				return fmt.Errorf("%w: cleanup cutoff for status %q, which is not terminal", queuestype.ErrConfig, s)
			}
			if t.IsZero() {
				return fmt.Errorf("%w: cleanup cutoff for status %q%s is zero (omit the status to keep it)", queuestype.ErrConfig, s, task)
			}
		}
		return nil
	}
	if err := check("", p.Before); err != nil {
		return nil, 0, err
	}
	tasks := make([]string, 0, len(p.ByTask))
	for task, m := range p.ByTask {
		if task == "" {
			return nil, 0, fmt.Errorf("%w: cleanup cutoffs for an empty task name", queuestype.ErrConfig)
		}
		if err := check(fmt.Sprintf(" of task %q", task), m); err != nil {
			return nil, 0, err
		}
		tasks = append(tasks, task)
	}
	slices.Sort(tasks)
	var out []CleanupCutoff
	add := func(task string, m map[queuestype.Status]time.Time) {
		for _, s := range TerminalStatuses {
			if t, ok := m[s]; ok {
				out = append(out, CleanupCutoff{Task: task, Status: s, Before: t})
			}
		}
	}
	add("", p.Before)
	for _, task := range tasks {
		add(task, p.ByTask[task])
	}
	return out, limit, nil
}

// CleanupOverridden lists the tasks of p.ByTask, sorted: their records
// follow their own cutoffs only, never the defaults.
func CleanupOverridden(p CleanupParams) []string {
	tasks := make([]string, 0, len(p.ByTask))
	for task := range p.ByTask {
		tasks = append(tasks, task)
	}
	slices.Sort(tasks)
	return tasks
}

// CleanupCutoffFor returns the cutoff of a record of task in status s
// under p, and false when such a record is kept.
func CleanupCutoffFor(p CleanupParams, task string, s queuestype.Status) (time.Time, bool) {
	m := p.Before
	if o, ok := p.ByTask[task]; ok {
		m = o
	}
	t, ok := m[s]
	return t, ok
}

// CleanupAll is the CleanupParams deleting every terminal record completed
// before before, whatever its status.
func CleanupAll(before time.Time, limit int) CleanupParams {
	m := make(map[queuestype.Status]time.Time, len(TerminalStatuses))
	for _, s := range TerminalStatuses {
		m[s] = before
	}
	return CleanupParams{Before: m, Limit: limit}
}
