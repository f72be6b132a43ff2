package queues

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"
)

type ctxT = context.Context

type nopBackend struct{ driver.Backend }

func TestConfigValidation(t *testing.T) {
	b := nopBackend{}
	bad := map[string]Config{
		"nil backend":          {},
		"bad namespace":        {Backend: b, Namespace: "Bad-NS"},
		"trailing underscore":  {Backend: b, Namespace: "a_"},
		"unknown exec backend": {Backend: b, ExecutionBackend: "carrier-pigeon"},
		"in-app immediate":     {Backend: b, ExecutionBackend: ExecutionImmediate, Worker: WorkerConfig{Placement: PlacementInApp}},
		"queue cap outside":    {Backend: b, Worker: WorkerConfig{Queues: []string{"a"}, QueueConcurrency: map[string]int{"b": 1}}},
		"zero queue cap":       {Backend: b, Worker: WorkerConfig{QueueConcurrency: map[string]int{"b": 0}}},
		"negative batch":       {Backend: b, Worker: WorkerConfig{BatchSize: -1}},
		"backoff below poll":   {Backend: b, Worker: WorkerConfig{PollInterval: time.Second, PollBackoffMax: time.Millisecond}},
		"multiplier below 1":   {Backend: b, Worker: WorkerConfig{PollBackoffMultiplier: 0.5}},
		"jitter above 1":       {Backend: b, Worker: WorkerConfig{PollJitter: 1.5}},
		"empty queue name":     {Backend: b, Worker: WorkerConfig{Queues: []string{""}}},
		"bad placement":        {Backend: b, Worker: WorkerConfig{Placement: "sideways"}},
		"negative identity":    {Backend: b, MaxArgumentIdentityBytes: -1},
	}
	for name, cfg := range bad {
		if _, err := New(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: got %v, want ErrConfig", name, err)
		}
	}
	s, err := New(Config{Backend: b, Namespace: "my_app2"})
	if err != nil {
		t.Fatal(err)
	}
	w := s.cfg.Worker
	if w.BatchSize != 10 || w.MaxConcurrency != 1 || w.PollInterval != 100*time.Millisecond ||
		w.PollBackoffMax != 30*time.Second || w.HeartbeatInterval != 30*time.Second || w.MaxInterruptions != 3 ||
		w.ID == "" || w.Placement != PlacementExternal || w.PollJitter != 0.15 {
		t.Errorf("defaults not applied: %+v", w)
	}
	s, _ = New(Config{Backend: b, Worker: WorkerConfig{PollJitter: -1, HeartbeatJitterFraction: -1}})
	if s.cfg.Worker.PollJitter != 0 || s.cfg.Worker.HeartbeatJitterFraction != 0 {
		t.Errorf("negative jitter must mean none: %+v", s.cfg.Worker)
	}
}

// Crash recovery is on by default: StaleAfter 0 means four heartbeat
// intervals, a negative value turns it off.
func TestWorkerStaleAfterDefault(t *testing.T) {
	cases := []struct {
		name string
		in   WorkerConfig
		want time.Duration
	}{
		{"default heartbeat", WorkerConfig{}, 4 * defaultHeartbeatInterval},
		{"own heartbeat", WorkerConfig{HeartbeatInterval: 5 * time.Second}, 20 * time.Second},
		{"explicit", WorkerConfig{StaleAfter: 3 * time.Minute}, 3 * time.Minute},
		{"off", WorkerConfig{StaleAfter: -1}, -1},
	}
	for _, c := range cases {
		got, err := c.in.withDefaults()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got.StaleAfter != c.want {
			t.Errorf("%s: StaleAfter %s, want %s", c.name, got.StaleAfter, c.want)
		}
	}
	// The in-app worker of a service gets the same default.
	s, err := New(Config{Backend: nopBackend{}})
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.Worker.StaleAfter != 2*time.Minute {
		t.Errorf("service worker StaleAfter %s, want 2m", s.cfg.Worker.StaleAfter)
	}
}

func TestTaskOptionsValidation(t *testing.T) {
	fn := func(_ ctxT, _ struct{}) (struct{}, error) { return struct{}{}, nil }
	bad := map[string]TaskOptions{
		"key with unique-by":   {Key: "k", UniqueBy: UniqueByTask},
		"forever with nothing": {UniqueUntil: UniqueUntilForever},
		"priority too high":    {Priority: 1001},
		"priority too low":     {Priority: -1001},
		"negative retries":     {Retries: -1},
		"negative timeout":     {Timeout: -time.Second},
		"negative run after":   {RunAfter: -time.Second},
		"bad multiplier":       {RetryBackoff: RetryBackoff{InitialDelay: time.Second, Multiplier: 0.5}},
		"max below initial":    {RetryBackoff: RetryBackoff{InitialDelay: time.Second, MaxDelay: time.Millisecond}},
		"unknown unique mode":  {UniqueBy: "colour"},
		"unknown log level":    {LogLevel: "loud"},
		"negative initial":     {RetryBackoff: RetryBackoff{InitialDelay: -time.Second}},
		"unknown unique until": {UniqueUntil: "tuesday"},
		"negative expires in":  {ExpiresIn: -time.Second},
	}
	for name, o := range bad {
		if _, err := Register(NewRegistry(), "t", fn, o); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: got %v, want ErrConfig", name, err)
		}
	}
	r := NewRegistry()
	if _, err := Register(r, "t", fn); err != nil {
		t.Fatal(err)
	}
	if _, err := Register(r, "t", fn); !errors.Is(err, ErrConfig) {
		t.Errorf("duplicate name: %v", err)
	}
	if _, err := Register(r, "", fn); !errors.Is(err, ErrConfig) {
		t.Errorf("empty name: %v", err)
	}
	if _, err := Register(r, "forever", fn, TaskOptions{UniqueBy: UniqueByArguments, UniqueUntil: UniqueUntilForever}); err != nil {
		t.Errorf("valid forever: %v", err)
	}
}
