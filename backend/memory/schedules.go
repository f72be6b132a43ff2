package memory

import (
	"context"
	"sort"

	"github.com/queuesgo/queues/driver"
)

var _ driver.SchedulePauser = (*Backend)(nil)

// PauseSchedule records name as paused, stamped by the backend clock;
// pausing a paused schedule keeps its original Since.
func (b *Backend) PauseSchedule(ctx context.Context, name string) error {
	if err := driver.CheckScheduleName(ctx, name); err != nil {
		return err
	}
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pauses == nil {
		b.pauses = map[string]driver.SchedulePause{}
	}
	if _, ok := b.pauses[name]; !ok {
		b.pauses[name] = driver.SchedulePause{Name: name, Since: now}
	}
	return nil
}

// ResumeSchedule removes the pause of name and reports whether there was one.
func (b *Backend) ResumeSchedule(ctx context.Context, name string) (bool, error) {
	if err := driver.CheckScheduleName(ctx, name); err != nil {
		return false, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.pauses[name]
	delete(b.pauses, name)
	return ok, nil
}

// PausedSchedules returns every pause, ordered by name (byte-wise).
func (b *Backend) PausedSchedules(ctx context.Context) ([]driver.SchedulePause, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	out := make([]driver.SchedulePause, 0, len(b.pauses))
	for _, p := range b.pauses {
		out = append(out, p)
	}
	b.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
