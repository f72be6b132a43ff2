package queues

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/queuesgo/queues/backend/memory"
	"github.com/queuesgo/queues/driver"
)

// The pacing of failed store calls: the nominal delay doubles from the
// base to the cap, each pause is jittered within its upper half, a line is
// logged for the first failure and each longer delay, then at most once per
// quiet interval; a success resets it all.
func TestStoreBackoffSteps(t *testing.T) {
	b := storeBackoff{policy: backoffPolicy{base: 100 * time.Millisecond, max: 10 * time.Second, quietLog: time.Minute, giveUpAfter: 5}}
	now := time.Unix(1_000_000, 0)
	wantSteps := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3200 * time.Millisecond, 6400 * time.Millisecond, 10 * time.Second, 10 * time.Second, 10 * time.Second}
	for i, want := range wantSteps {
		st := b.fail(now, driver.ClassTransient)
		if st.pause < want/2 || st.pause > want {
			t.Errorf("failure %d: pause %v, want within [%v, %v]", i+1, st.pause, want/2, want)
		}
		if wantLog := i < 8; st.log != wantLog {
			t.Errorf("failure %d (delay %v): log %v, want %v", i+1, want, st.log, wantLog)
		}
		if st.giveUp {
			t.Fatalf("failure %d: a transient error gave up", i+1)
		}
		now = now.Add(st.pause)
	}
	// At the cap: one line per minute, however many failures pass.
	logged := 0
	for range 60 { // 60 failures of 5 to 10 s: 5 to 10 minutes
		st := b.fail(now, driver.ClassTransient)
		if st.log {
			logged++
		}
		now = now.Add(st.pause)
	}
	if logged < 4 || logged > 10 {
		t.Errorf("%d lines logged over 60 failures at the cap, want about one a minute", logged)
	}
	if n := b.succeed(); n != 70 {
		t.Errorf("succeed reported %d failures, want 70", n)
	}
	if n := b.succeed(); n != 0 {
		t.Errorf("a second success reported %d failures, want 0", n)
	}
	if st := b.fail(now, driver.ClassTransient); !st.log || st.pause > 100*time.Millisecond {
		t.Errorf("first failure after a success: %+v, want logged with the base delay", st)
	}
}

// Only permanent errors in a row give up, and they are not logged one by
// one: the give-up reports them. Any other class breaks the run.
func TestStoreBackoffGivesUpOnPermanentErrors(t *testing.T) {
	policy := backoffPolicy{base: 100 * time.Millisecond, max: 10 * time.Second, quietLog: time.Minute, giveUpAfter: 5}
	now := time.Unix(1_000_000, 0)

	b := storeBackoff{policy: policy}
	for i := 1; i <= 5; i++ {
		st := b.fail(now, driver.ClassPermanent)
		if st.log {
			t.Errorf("permanent failure %d logged", i)
		}
		if st.giveUp != (i == 5) {
			t.Errorf("permanent failure %d: giveUp %v", i, st.giveUp)
		}
	}

	b = storeBackoff{policy: policy}
	for i, c := range []driver.ErrorClass{driver.ClassPermanent, driver.ClassPermanent, driver.ClassPermanent, driver.ClassPermanent,
		driver.ClassUnknown, driver.ClassPermanent, driver.ClassPermanent, driver.ClassPermanent, driver.ClassPermanent,
		driver.ClassTransient, driver.ClassInvalidData, driver.ClassUnknown} {
		if st := b.fail(now, c); st.giveUp {
			t.Fatalf("failure %d (%s) gave up after a run broken by another class", i+1, c)
		}
	}

	b = storeBackoff{policy: policy}
	for range 4 {
		b.fail(now, driver.ClassPermanent)
	}
	b.succeed()
	for i := 1; i <= 4; i++ {
		if st := b.fail(now, driver.ClassPermanent); st.giveUp {
			t.Fatalf("gave up after %d permanent errors following a success", i)
		}
	}

	// A loop that never gives up (a sweeper) logs permanent errors like any other.
	policy.giveUpAfter = 0
	b = storeBackoff{policy: policy}
	for i := 1; i <= 20; i++ {
		st := b.fail(now, driver.ClassPermanent)
		if st.giveUp {
			t.Fatal("a loop without a give-up gave up")
		}
		if i == 1 && !st.log {
			t.Error("a sweeper's first permanent failure was not logged")
		}
	}

	// A floor (a sweeper's interval longer than the backoff): the delay
	// said grows only past it, so failures are not logged one by one.
	b = storeBackoff{policy: backoffPolicy{base: 10 * time.Millisecond, max: 10 * time.Second, floor: time.Minute, quietLog: time.Minute}}
	logged := 0
	for range 10 {
		if b.fail(now, driver.ClassTransient).log {
			logged++
		}
		now = now.Add(time.Second)
	}
	if logged != 1 {
		t.Errorf("%d of 10 failures under a one-minute floor logged, want 1", logged)
	}
}

// errBroken is what the scripted store below returns from a claim.
var errBroken = errors.New("database disk image is malformed")

// scriptedClaims is a store whose claims fail with err (classified as
// class) while failing is set.
type scriptedClaims struct {
	driver.Backend
	class   driver.ErrorClass
	err     error
	failing atomic.Bool
	calls   atomic.Int32
}

func (s *scriptedClaims) ClaimMany(ctx context.Context, p driver.ClaimParams) (driver.ClaimResult, error) {
	if s.failing.Load() {
		s.calls.Add(1)
		return driver.ClaimResult{}, s.err
	}
	return s.Backend.ClaimMany(ctx, p)
}

func (s *scriptedClaims) ClassifyError(err error) driver.ErrorClass {
	if errors.Is(err, s.err) {
		return s.class
	}
	return driver.ClassUnknown
}

// logRecorder keeps the log records at WARN and above, and the INFO ones
// whose message is in info.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
	info map[string]bool
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn && !l.info[r.Message] {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}

func (l *logRecorder) records() []slog.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]slog.Record(nil), l.recs...)
}

func attr(r slog.Record, key string) slog.Value {
	var v slog.Value
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value
			return false
		}
		return true
	})
	return v
}

// backoffWorker returns a started service on store and a worker on it
// with a short backoff policy and no sweepers.
func backoffWorker(t *testing.T, store driver.Backend, logs *logRecorder, policy backoffPolicy) *Worker {
	t.Helper()
	svc, err := New(Config{Backend: store, Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	w, err := svc.NewWorker(WorkerConfig{ID: "bw", PollInterval: time.Millisecond, StaleAfter: -1, ExpiryCheckInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	w.backoff = policy
	return w
}

func waitUntil(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, limit)
		}
		time.Sleep(time.Millisecond)
	}
}

// A claim that keeps failing with a permanent error stops Run after the
// bound, with an error matching ErrStoreBroken that wraps the store's own
// error, and without a log line per try.
func TestWorkerGivesUpOnPermanentClaimErrors(t *testing.T) {
	store := &scriptedClaims{Backend: memory.New(memory.Options{}), class: driver.ClassPermanent, err: errBroken}
	store.failing.Store(true)
	logs := &logRecorder{}
	w := backoffWorker(t, store, logs, backoffPolicy{base: time.Millisecond, max: 4 * time.Millisecond, quietLog: time.Minute, giveUpAfter: 5})
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		_, _ = w.Stop(context.Background(), true)
		t.Fatal("Run did not give up within 10s")
	}
	if !errors.Is(err, ErrStoreBroken) || !errors.Is(err, errBroken) {
		t.Fatalf("Run: %v; want an error matching ErrStoreBroken and the store's error", err)
	}
	t.Logf("Run: %v", err)
	if n := store.calls.Load(); n != 5 {
		t.Errorf("%d claims tried, want 5", n)
	}
	for _, r := range logs.records() {
		t.Errorf("logged %s %q (%v): the give-up is reported by Run's error alone", r.Level, r.Message, attr(r, "error"))
	}
}

// A claim that keeps failing with a transient error never gives up: the
// loop waits longer after each failure up to the cap, logs each longer
// delay once and nothing more at the cap; a store that answers again is
// used at once, and said once.
func TestWorkerWaitsOutTransientClaimErrors(t *testing.T) {
	for _, class := range []driver.ErrorClass{driver.ClassTransient, driver.ClassUnknown} {
		t.Run(class.String(), func(t *testing.T) {
			store := &scriptedClaims{Backend: memory.New(memory.Options{}), class: class, err: errors.New("connection refused")}
			store.failing.Store(true)
			logs := &logRecorder{info: map[string]bool{"Queue worker loop recovered": true}}
			const base, capped = 2 * time.Millisecond, 16 * time.Millisecond
			w := backoffWorker(t, store, logs, backoffPolicy{base: base, max: capped, quietLog: time.Hour, giveUpAfter: 5})
			done := make(chan error, 1)
			go func() { done <- w.Run(context.Background()) }()
			start := time.Now()
			waitUntil(t, 20*time.Second, "30 failed claims", func() bool { return store.calls.Load() >= 30 })
			// 30 tries wait at least half of 2+4+8+16+25×16 ms.
			if took, least := time.Since(start), (base+2*base+4*base+8*base+25*capped)/2; took < least {
				t.Errorf("30 failed claims took %v, want at least %v", took, least)
			}
			select {
			case err := <-done:
				t.Fatalf("Run returned during a %s outage: %v", class, err)
			default:
			}
			recs := logs.records()
			if len(recs) != 4 {
				t.Fatalf("%d lines logged for 30 failures, want 4 (delays of 2, 4, 8 and 16 ms)", len(recs))
			}
			for i, r := range recs {
				step := base << i
				retry := attr(r, "retry_in").Duration()
				if r.Message != "Queue worker loop error" || attr(r, "failures").Int64() != int64(i+1) ||
					retry < step/2 || retry > step || attr(r, "error_class").String() != class.String() {
					t.Errorf("line %d: %s %q failures=%v retry_in=%v class=%v; want failures=%d and retry_in within [%v, %v]",
						i, r.Level, r.Message, attr(r, "failures"), retry, attr(r, "error_class"), i+1, step/2, step)
				}
			}
			store.failing.Store(false)
			waitUntil(t, 10*time.Second, "the recovered line", func() bool { return len(logs.records()) == 5 })
			if r := logs.records()[4]; r.Message != "Queue worker loop recovered" || attr(r, "failures").Int64() < 30 {
				t.Errorf("after the store answered: %q failures=%v", r.Message, attr(r, "failures"))
			}
			if _, err := w.Stop(context.Background(), false); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatalf("Run after a recovered outage: %v", err)
			}
		})
	}
}

// An in-app worker that gives up says so at once: nobody reads its error
// before Close.
func TestInAppWorkerGiveUpIsLogged(t *testing.T) {
	store := &scriptedClaims{Backend: memory.New(memory.Options{}), class: driver.ClassPermanent, err: errBroken}
	store.failing.Store(true)
	logs := &logRecorder{}
	svc, err := New(Config{Backend: store, Logger: slog.New(logs), Worker: WorkerConfig{Placement: PlacementInApp,
		PollInterval: 10 * time.Millisecond, StaleAfter: -1, ExpiryCheckInterval: -1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	waitUntil(t, 10*time.Second, "the give-up line", func() bool { return len(logs.records()) > 0 })
	recs := logs.records()
	if len(recs) != 1 || recs[0].Level != slog.LevelError {
		t.Fatalf("%d lines, want one ERROR: %v", len(recs), recs)
	}
	if err, _ := attr(recs[0], "error").Any().(error); !errors.Is(err, ErrStoreBroken) || !errors.Is(err, errBroken) {
		t.Errorf("logged error %v, want ErrStoreBroken wrapping the store's error", attr(recs[0], "error"))
	}
	if n := store.calls.Load(); n != storeGiveUpAfter {
		t.Errorf("%d claims tried, want %d", n, storeGiveUpAfter)
	}
}
