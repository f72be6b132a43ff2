package queues

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/events"
	"github.com/queuesgo/queues/queuestype"
)

// recurrenceTimeout bounds the write of a successor occurrence, which runs
// after the predecessor's terminal write (whose context may be ending).
const recurrenceTimeout = 10 * time.Second

// scheduleSyncTimeout bounds the startup sync, which a worker runs before
// it reports ready.
const scheduleSyncTimeout = 30 * time.Second

// scanPageSize and scanPages bound the record scans of schedule
// operations that know no key: finding orphans (occurrences whose schedule
// is gone) visits at most scanPages × scanPageSize records per active
// status, and the last outcome of a schedule is looked for among the
// newest scanPageSize records of each terminal status. Active occurrences
// are read by key, never scanned.
const (
	scanPageSize = 200
	scanPages    = 25
)

// Messages of the cancellations the schedule engine makes.
const (
	msgScheduleRemoved   = "schedule removed"
	msgScheduleChanged   = "schedule changed"
	msgSchedulePaused    = "schedule paused"
	msgScheduleTriggered = "schedule triggered"
)

// now is the engine's clock for computing occurrences (tests inject one).
func (s *Service) now() time.Time {
	if s.clock != nil {
		return s.clock().UTC()
	}
	return time.Now().UTC()
}

// dueChanged returns a channel closed at the next announceDue.
func (s *Service) dueChanged() <-chan struct{} {
	s.dueMu.Lock()
	defer s.dueMu.Unlock()
	if s.dueCh == nil {
		s.dueCh = make(chan struct{})
	}
	return s.dueCh
}

// announceDue wakes this process's idle workers to sample the next due
// time again.
func (s *Service) announceDue() {
	s.dueMu.Lock()
	defer s.dueMu.Unlock()
	if s.dueCh != nil {
		close(s.dueCh)
		s.dueCh = nil
	}
}

// enqueueOccurrence enqueues an occurrence of se due at at, keyed so that
// concurrent attempts converge on one record: when an active occurrence
// already holds the key, it is returned with existing set.
func (s *Service) enqueueOccurrence(ctx context.Context, se *schedEntry, at time.Time) (rec *Record, existing bool, err error) {
	p, err := s.prepare(ctx, se.task, nil, se.args, EnqueueOptions{ScheduledAt: at, Key: se.key}, true)
	if err != nil {
		return nil, false, fmt.Errorf("schedule %s: %w", se.full(), err)
	}
	p.params.Policy.Schedule = se.spec
	res, err := s.insert(ctx, []prepared{p})
	if err != nil {
		return nil, false, fmt.Errorf("schedule %s: %w", se.full(), err)
	}
	r := res[0]
	if r.record == nil {
		return nil, r.Deduplicated, fmt.Errorf("schedule %s: the store returned no record", se.full())
	}
	if !r.Deduplicated {
		s.announceDue()
	}
	return r.record, r.Deduplicated, nil
}

// enqueueUnpaused enqueues an occurrence of se due at at unless se is
// paused. A pause written while the occurrence was being enqueued is seen
// by one side: PauseSchedule writes the pause before it looks for the
// active occurrence, and this reads the pauses again after its write and
// cancels its new occurrence when a pause has appeared.
func (s *Service) enqueueUnpaused(ctx context.Context, se *schedEntry, at time.Time) (rec *Record, existing bool, err error) {
	rec, existing, err = s.enqueueOccurrence(ctx, se, at)
	if err != nil || existing {
		return rec, existing, err
	}
	paused, err := s.pauses(ctx)
	if err != nil {
		return rec, false, err
	}
	if _, ok := paused[se.full()]; ok {
		if _, err := s.Cancel(withoutRecurrence(ctx), rec.ID, CancelOptions{Reason: msgSchedulePaused}); err != nil {
			return rec, false, fmt.Errorf("schedule %s: cancel the occurrence of a paused schedule: %w", se.full(), err)
		}
		return nil, false, nil
	}
	return rec, false, nil
}

// pauses returns the paused schedules by name (none without a
// driver.SchedulePauser).
func (s *Service) pauses(ctx context.Context) (map[string]time.Time, error) {
	p, ok := s.backend.(driver.SchedulePauser)
	if !ok {
		return nil, nil
	}
	list, err := p.PausedSchedules(ctx)
	if err != nil {
		return nil, fmt.Errorf("paused schedules: %w", err)
	}
	out := make(map[string]time.Time, len(list))
	for _, x := range list {
		out[x.Name] = x.Since
	}
	return out, nil
}

// recur is the recurrence fast path, run by whichever process made rec
// terminal: when this registry declares rec's schedule (and it is not
// paused), it enqueues the next occurrence from rec's end, built from the
// registry. A failure is logged; the keeper repairs the gap.
func (s *Service) recur(ctx context.Context, rec *Record) {
	if rec == nil || !rec.Status.IsTerminal() || rec.Policy.Schedule.IsZero() || ctx.Value(noRecurKey{}) != nil {
		return
	}
	se := s.registry.scheduleByName(rec.Policy.Schedule.Name)
	if se == nil {
		return // removed from code, or declared by another application
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recurrenceTimeout)
	defer cancel()
	paused, err := s.pauses(ctx)
	if err != nil {
		s.logger.Warn("Queue schedule recurrence failed", "schedule", se.full(), "task_id", rec.ID, "error", err)
		return
	}
	if _, ok := paused[se.full()]; ok {
		return
	}
	base := rec.CompletedAt
	if base.IsZero() {
		base = s.now()
	}
	at, ok := se.nextFrom(base)
	if !ok {
		s.logger.Warn("Queue schedule has no next occurrence", "schedule", se.full())
		return
	}
	next, existing, err := s.enqueueUnpaused(ctx, se, at)
	if err != nil {
		s.logger.Warn("Queue schedule recurrence failed", "schedule", se.full(), "task_id", rec.ID, "error", err)
		return
	}
	if next != nil && !existing {
		s.logger.Debug("Queue schedule occurrence enqueued", "schedule", se.full(), "task_id", next.ID, "scheduled_at", next.ScheduledAt)
	}
}

// isTerminalEvent reports whether typ announces a terminal transition.
func isTerminalEvent(typ string) bool {
	switch typ {
	case events.TypeCompleted, events.TypeFailed, events.TypeStaleFailed, events.TypeExpired, events.TypeCancelled:
		return true
	}
	return false
}

// ScheduleSyncResult counts what a startup sync did.
type scheduleSyncResult struct {
	kept, enqueued, replaced, orphaned int
}

// syncSchedules is the startup sync: every declared, unpaused schedule gets
// an active occurrence (an identical one is kept; a pending one of an
// older declaration is replaced; a running one finishes and its successor
// follows the declaration), and pending occurrences of schedules this
// registry does not declare are cancelled as orphans. The key makes it
// idempotent, so no lock is needed.
func (s *Service) syncSchedules(ctx context.Context) (scheduleSyncResult, error) {
	var res scheduleSyncResult
	ctx = withoutRecurrence(ctx)
	paused, err := s.pauses(ctx)
	if err != nil {
		return res, err
	}
	var errs []error
	now := s.now()
	for _, se := range s.registry.schedules() {
		if _, ok := paused[se.full()]; ok {
			continue
		}
		at, ok := se.firstRun(now)
		if !ok {
			s.logger.Warn("Queue schedule has no next occurrence", "schedule", se.full())
			continue
		}
		rec, existing, err := s.enqueueUnpaused(ctx, se, at)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switch {
		case rec == nil:
			// Paused meanwhile.
		case !existing:
			res.enqueued++
		case se.identical(rec) || rec.Status == StatusRunning:
			res.kept++
		default:
			// An occurrence of an older declaration: replace it. Should
			// it start meanwhile, it finishes and its successor follows
			// this declaration.
			if _, err := s.Cancel(ctx, rec.ID, CancelOptions{Reason: msgScheduleChanged}); err != nil {
				errs = append(errs, fmt.Errorf("schedule %s: cancel the old occurrence: %w", se.full(), err))
				continue
			}
			if _, _, err := s.enqueueUnpaused(ctx, se, at); err != nil {
				errs = append(errs, err)
				continue
			}
			res.replaced++
		}
	}
	n, err := s.cancelOrphans(ctx)
	res.orphaned = n
	if err != nil {
		errs = append(errs, err)
	}
	return res, errors.Join(errs...)
}

// cancelOrphans cancels the pending occurrences whose schedule this
// registry does not declare (a schedule removed from code). Running ones
// finish and get no successor. A removed schedule's key is not known, so
// this is a scan of every task's waiting records, newest first, bounded
// by scanPages (see scanPageSize): an orphan behind more newer waiting
// records is left to a later sync, once fewer wait.
func (s *Service) cancelOrphans(ctx context.Context) (int, error) {
	if _, ok := s.backend.(driver.Inspector); !ok {
		return 0, nil
	}
	var orphans []uuid.UUID
	for _, st := range []Status{StatusPending, StatusScheduled} {
		err := s.scan(ctx, TaskFilter{Status: st}, func(rec *Record) bool {
			if strings.HasPrefix(rec.Key, scheduleKeyPrefix) && s.registry.scheduleByKey(rec.Key) == nil {
				orphans = append(orphans, rec.ID)
			}
			return true
		})
		if err != nil {
			return 0, fmt.Errorf("orphan schedules: %w", err)
		}
	}
	n := 0
	for _, id := range orphans {
		ok, err := s.Cancel(withoutRecurrence(ctx), id, CancelOptions{Reason: msgScheduleRemoved})
		if err != nil {
			return n, fmt.Errorf("orphan schedules: %w", err)
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// scan visits the records matching f, newest first, at most scanPages
// pages, until visit returns false.
func (s *Service) scan(ctx context.Context, f TaskFilter, visit func(*Record) bool) error {
	f.Limit = scanPageSize
	for range scanPages {
		page, err := s.ListTasks(ctx, f)
		if err != nil {
			return err
		}
		for _, rec := range page.Items {
			if !visit(rec) {
				return nil
			}
		}
		if page.NextCursor == uuid.Nil {
			return nil
		}
		f.Cursor = page.NextCursor
	}
	return nil
}

// activeOccurrence returns the active (pending, scheduled or running)
// record holding se's key, or nil. The key is unique among records, so
// this is one exact read however many records the task has.
func (s *Service) activeOccurrence(ctx context.Context, se *schedEntry) (*Record, error) {
	rec, err := s.backend.GetTaskByKey(ctx, se.key)
	if errors.Is(err, ErrTaskNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	// The key may still be held by the occurrence that ended last, or by
	// a record of another task enqueued with that key by hand.
	if rec.IsTerminal() || rec.TaskName != se.task.name {
		return nil, nil
	}
	return rec, nil
}

// lastOutcome returns the terminal occurrence of se that ended last among
// the newest of each terminal status, or nil.
func (s *Service) lastOutcome(ctx context.Context, se *schedEntry) (*Record, error) {
	var last *Record
	for _, st := range []Status{StatusCompleted, StatusFailed, StatusCancelled, StatusExpired} {
		f := TaskFilter{Status: st, TaskName: se.task.name, Limit: scanPageSize}
		page, err := s.ListTasks(ctx, f)
		if err != nil {
			return nil, err
		}
		for _, rec := range page.Items {
			// A successor takes the key over from its ended predecessor,
			// which keeps the schedule's name in its policy.
			if rec.Policy.Schedule.Name == se.full() {
				if last == nil || rec.CompletedAt.After(last.CompletedAt) {
					last = rec
				}
				break
			}
		}
	}
	return last, nil
}

// keepSchedules is one pass of the schedule keeper: every declared,
// unpaused schedule without an active occurrence (its terminal transition
// happened in a process whose registry lacks it, or the successor's write
// failed) gets one, computed from now. It returns how many it repaired.
func (s *Service) keepSchedules(ctx context.Context) (int, error) {
	scheds := s.registry.schedules()
	if len(scheds) == 0 {
		return 0, nil
	}
	paused, err := s.pauses(ctx)
	if err != nil {
		return 0, err
	}
	repaired := 0
	var errs []error
	now := s.now()
	for _, se := range scheds {
		if _, ok := paused[se.full()]; ok {
			continue
		}
		at, ok := se.nextFrom(now)
		if !ok {
			continue
		}
		rec, existing, err := s.enqueueUnpaused(ctx, se, at)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if rec != nil && !existing {
			repaired++
			s.logger.Info("Queue schedule gap repaired", "schedule", se.full(), "schedule.gap_repaired", 1)
		}
	}
	if repaired > 0 {
		s.logger.Info("Queue schedule keeper repaired gaps", "schedule.gap_repaired", repaired)
	}
	return repaired, errors.Join(errs...)
}

// scheduleKeeper is the keeper sweeper of a worker (off with a negative
// ScheduleCheckInterval).
func scheduleKeeper(w *Worker) *sweeper {
	if w.cfg.ScheduleCheckInterval <= 0 {
		return nil
	}
	return &sweeper{name: "schedule_keeper", interval: w.cfg.ScheduleCheckInterval, sweep: w.svc.keepSchedules}
}

// runScheduleSync runs the startup sync of a worker and logs its outcome;
// a failure never stops the worker (the keeper repairs what it missed).
func (s *Service) runScheduleSync(ctx context.Context, workerID string) {
	if s.cfg.DisableScheduleSync {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, scheduleSyncTimeout)
	defer cancel()
	res, err := s.syncSchedules(ctx)
	if err != nil {
		s.logger.Error("Queue schedule sync failed", "worker_id", workerID, "error", err)
	}
	if res.enqueued+res.replaced+res.orphaned > 0 {
		s.logger.Info("Queue schedules synced", "worker_id", workerID, "kept", res.kept, "enqueued", res.enqueued,
			"replaced", res.replaced, "orphaned", res.orphaned)
	}
}

// lookupSchedule returns the declared schedule named name.
func (s *Service) lookupSchedule(name string) (*schedEntry, error) {
	se := s.registry.scheduleByName(name)
	if se == nil {
		return nil, fmt.Errorf("%w: %q", queuestype.ErrScheduleNotFound, name)
	}
	return se, nil
}

// PauseSchedule pauses the schedule named name ("<task>" or
// "<task>:<schedule name>") for every process sharing the store: its
// pending occurrence is cancelled (message "schedule paused") and no new
// one is enqueued until ResumeSchedule. A running occurrence finishes and
// gets no successor. It needs a store implementing driver.SchedulePauser
// (else an error matching queuestype.ErrSchedulePauseUnsupported); an
// undeclared name matches queuestype.ErrScheduleNotFound.
func (s *Service) PauseSchedule(ctx context.Context, name string) error {
	se, err := s.lookupSchedule(name)
	if err != nil {
		return err
	}
	p, ok := s.backend.(driver.SchedulePauser)
	if !ok {
		return fmt.Errorf("%w (%s backend)", queuestype.ErrSchedulePauseUnsupported, s.backend.Name())
	}
	if err := p.PauseSchedule(ctx, se.full()); err != nil {
		return fmt.Errorf("pause schedule %s: %w", se.full(), err)
	}
	rec, err := s.activeOccurrence(ctx, se)
	if err != nil {
		return fmt.Errorf("pause schedule %s: %w", se.full(), err)
	}
	if rec != nil && rec.Status != StatusRunning {
		if _, err := s.Cancel(withoutRecurrence(ctx), rec.ID, CancelOptions{Reason: msgSchedulePaused}); err != nil {
			return fmt.Errorf("pause schedule %s: %w", se.full(), err)
		}
	}
	return nil
}

// ResumeSchedule removes the pause of the schedule named name and
// enqueues its next occurrence, computed from now (InitialDelay is not
// applied again). Resuming a schedule that is not paused only makes sure
// it has an occurrence.
func (s *Service) ResumeSchedule(ctx context.Context, name string) error {
	se, err := s.lookupSchedule(name)
	if err != nil {
		return err
	}
	p, ok := s.backend.(driver.SchedulePauser)
	if !ok {
		return fmt.Errorf("%w (%s backend)", queuestype.ErrSchedulePauseUnsupported, s.backend.Name())
	}
	if _, err := p.ResumeSchedule(ctx, se.full()); err != nil {
		return fmt.Errorf("resume schedule %s: %w", se.full(), err)
	}
	at, ok := se.nextFrom(s.now())
	if !ok {
		return nil
	}
	if _, _, err := s.enqueueOccurrence(ctx, se, at); err != nil {
		return fmt.Errorf("resume schedule %s: %w", se.full(), err)
	}
	return nil
}

// TriggerSchedule runs the schedule named name now: its pending
// occurrence is replaced by one due now (or, when it has none, one due
// now is enqueued), and the schedule goes on from that occurrence's end.
// It returns the occurrence due now. When the occurrence is running, it
// returns that record and an error matching queuestype.ErrScheduleRunning.
// A paused schedule may be triggered: the triggered occurrence runs once
// and gets no successor until the schedule is resumed.
func (s *Service) TriggerSchedule(ctx context.Context, name string) (*Record, error) {
	se, err := s.lookupSchedule(name)
	if err != nil {
		return nil, err
	}
	now := s.now()
	// A keeper or a recurrence may enqueue an occurrence between the
	// cancel and the enqueue: replace that one too, a few times at most.
	for range 3 {
		rec, err := s.activeOccurrence(ctx, se)
		if err != nil {
			return nil, fmt.Errorf("trigger schedule %s: %w", se.full(), err)
		}
		if rec != nil {
			if rec.Status == StatusRunning {
				return rec, fmt.Errorf("%w: %s (task %s)", queuestype.ErrScheduleRunning, se.full(), rec.ID)
			}
			if rec.IsDue(now) {
				return rec, nil
			}
			if _, err := s.Cancel(withoutRecurrence(ctx), rec.ID, CancelOptions{Reason: msgScheduleTriggered}); err != nil {
				return nil, fmt.Errorf("trigger schedule %s: %w", se.full(), err)
			}
		}
		next, existing, err := s.enqueueOccurrence(ctx, se, now)
		if err != nil {
			return nil, fmt.Errorf("trigger schedule %s: %w", se.full(), err)
		}
		if !existing || next.Status == StatusRunning || next.IsDue(now) {
			if next.Status == StatusRunning {
				return next, fmt.Errorf("%w: %s (task %s)", queuestype.ErrScheduleRunning, se.full(), next.ID)
			}
			return next, nil
		}
	}
	return nil, fmt.Errorf("trigger schedule %s: another process keeps replacing its occurrence", se.full())
}

// ScheduleInfo describes one declared schedule, as Service.Schedules lists it.
type ScheduleInfo struct {
	// Name is "<task>" or "<task>:<schedule name>".
	Name     string `json:"name"`
	TaskName string `json:"task_name"`
	// Interval, Cron and Timezone are the declaration (one of Interval and Cron).
	Interval     time.Duration `json:"-"`
	Cron         string        `json:"cron,omitempty"`
	Timezone     string        `json:"timezone"`
	InitialDelay time.Duration `json:"-"`
	Jitter       time.Duration `json:"-"`
	// Paused is set while the schedule is paused, since PausedSince.
	Paused      bool      `json:"paused"`
	PausedSince time.Time `json:"-"`
	// NextRun is the active occurrence's due time (zero when there is none
	// or it is running).
	NextRun time.Time `json:"-"`
	// Active is the active occurrence (pending, scheduled or running), or nil.
	Active *Record `json:"-"`
	// Last is the most recent occurrence that ended, or nil.
	Last *Record `json:"-"`
}

// MarshalJSON writes durations in seconds, times in RFC 3339 (null when
// unset), and the active and last occurrences by ID, status and times.
func (i ScheduleInfo) MarshalJSON() ([]byte, error) {
	type occurrence struct {
		ID          string  `json:"id"`
		Status      string  `json:"status"`
		ScheduledAt any     `json:"scheduled_at"`
		StartedAt   any     `json:"started_at"`
		CompletedAt any     `json:"completed_at"`
		Error       *string `json:"error"`
	}
	occ := func(r *Record) *occurrence {
		if r == nil {
			return nil
		}
		o := &occurrence{ID: r.ID.String(), Status: string(r.Status), ScheduledAt: formatTime(r.ScheduledAt),
			StartedAt: formatTime(r.StartedAt), CompletedAt: formatTime(r.CompletedAt)}
		if r.Error != "" {
			e := r.Error
			o.Error = &e
		}
		return o
	}
	var interval any
	if i.Interval > 0 {
		interval = i.Interval.Seconds()
	}
	return json.Marshal(struct {
		Name         string      `json:"name"`
		TaskName     string      `json:"task_name"`
		Interval     any         `json:"interval"`
		Cron         string      `json:"cron,omitempty"`
		Timezone     string      `json:"timezone"`
		InitialDelay float64     `json:"initial_delay"`
		Jitter       float64     `json:"jitter"`
		Paused       bool        `json:"paused"`
		PausedSince  any         `json:"paused_since"`
		NextRun      any         `json:"next_run"`
		Active       *occurrence `json:"active"`
		Last         *occurrence `json:"last"`
	}{i.Name, i.TaskName, interval, i.Cron, i.Timezone, i.InitialDelay.Seconds(), i.Jitter.Seconds(), i.Paused,
		formatTime(i.PausedSince), formatTime(i.NextRun), occ(i.Active), occ(i.Last)})
}

// Schedules lists every schedule declared in this service's registry,
// ordered by name, with its paused state, its active occurrence and next
// run, and its last outcome. The active occurrence is read by key; the
// last outcome is looked for among the newest records of each terminal
// status of the task (a bounded scan), which needs a store implementing
// driver.Inspector.
func (s *Service) Schedules(ctx context.Context) ([]ScheduleInfo, error) {
	paused, err := s.pauses(ctx)
	if err != nil {
		return nil, err
	}
	scheds := s.registry.schedules()
	out := make([]ScheduleInfo, 0, len(scheds))
	for _, se := range scheds {
		info := ScheduleInfo{Name: se.full(), TaskName: se.task.name, Interval: se.spec.Interval, Cron: se.spec.Cron,
			Timezone: se.spec.Timezone, InitialDelay: se.spec.InitialDelay, Jitter: se.spec.Jitter}
		if since, ok := paused[se.full()]; ok {
			info.Paused, info.PausedSince = true, since
		}
		if info.Active, err = s.activeOccurrence(ctx, se); err != nil {
			return nil, fmt.Errorf("schedule %s: %w", se.full(), err)
		}
		if a := info.Active; a != nil && a.Status != StatusRunning {
			info.NextRun = a.ScheduledAt
			if info.NextRun.IsZero() {
				info.NextRun = a.CreatedAt
			}
		}
		if info.Last, err = s.lastOutcome(ctx, se); err != nil {
			return nil, fmt.Errorf("schedule %s: %w", se.full(), err)
		}
		out = append(out, info)
	}
	return out, nil
}
