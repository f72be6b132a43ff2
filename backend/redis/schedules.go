package redis

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/queuesgo/queues/driver"

	goredis "github.com/redis/go-redis/v9"
)

var _ driver.SchedulePauser = (*Backend)(nil)

// luaPauseSchedule records a pause in <p>:schedule_pauses (hash: name →
// since µs). ARGV[A] = name. HSETNX keeps the since of a pause already
// there; the time is the server's TIME, like every record time.
const luaPauseSchedule = luaLib + `
redis.call('HSETNX', P .. ':schedule_pauses', ARGV[A], nows())
return 1
`

var scriptPauseSchedule = goredis.NewScript(luaPauseSchedule)

// pausesKey is the hash of paused schedules.
func (b *Backend) pausesKey() string { return b.prefix + ":schedule_pauses" }

// PauseSchedule records name as paused with since = the server's TIME; a
// pause already there keeps its since.
func (b *Backend) PauseSchedule(ctx context.Context, name string) error {
	if err := driver.CheckScheduleName(ctx, name); err != nil {
		return err
	}
	if err := b.run(ctx, scriptPauseSchedule, name).Err(); err != nil {
		return fmt.Errorf("redis: pause schedule: %w", err)
	}
	return nil
}

// ResumeSchedule deletes the pause of name (one HDEL) and reports whether
// there was one.
func (b *Backend) ResumeSchedule(ctx context.Context, name string) (bool, error) {
	if err := driver.CheckScheduleName(ctx, name); err != nil {
		return false, err
	}
	n, err := b.client.HDel(ctx, b.pausesKey(), name).Result()
	if err != nil {
		return false, fmt.Errorf("redis: resume schedule: %w", err)
	}
	return n > 0, nil
}

// PausedSchedules reads the whole hash (one HGETALL: the set of paused
// schedules is small, a handful per task) and sorts it by name in Go,
// byte-wise, since a hash has no order.
func (b *Backend) PausedSchedules(ctx context.Context) ([]driver.SchedulePause, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h, err := b.client.HGetAll(ctx, b.pausesKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("redis: paused schedules: %w", err)
	}
	out := make([]driver.SchedulePause, 0, len(h))
	for name, v := range h {
		us, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("redis: paused schedules: since of %q: %w", name, err)
		}
		out = append(out, driver.SchedulePause{Name: name, Since: time.UnixMicro(us).UTC()})
	}
	slices.SortFunc(out, func(a, b driver.SchedulePause) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
