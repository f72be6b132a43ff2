package queues

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"

	"github.com/queuesgo/queues/queuestype"
)

// TaskFunc is the body of a task: typed arguments in, a typed result out. Use
// struct{} for "no result".
type TaskFunc[A, R any] func(ctx context.Context, args A) (R, error)

// IdentityArgser lets an arguments type choose the fields that define its
// identity for UniqueByArguments.
type IdentityArgser interface {
	IdentityArgs() any
}

// Registry holds the registered tasks of a program. Registration is explicit:
// registering a name twice is an error.
type Registry struct {
	mu    sync.RWMutex
	tasks map[string]*taskEntry
	// schedKeys holds every declared schedule by its occurrences' key.
	schedKeys map[string]*schedEntry
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{tasks: map[string]*taskEntry{}, schedKeys: map[string]*schedEntry{}}
}

// taskEntry is the type-erased form of a registered task.
type taskEntry struct {
	name string
	opts TaskOptions
	// hasFunc is false for tasks declared for producer-only processes.
	hasFunc bool
	// decode validates raw arguments by decoding them into A.
	decode func(raw json.RawMessage) (any, error)
	// isArgs reports whether v is already the task's argument type A.
	isArgs func(v any) bool
	// identity returns the value whose canonical JSON defines an arguments identity.
	identity func(decoded any) any
	// run decodes the arguments and calls the function.
	run func(ctx context.Context, raw json.RawMessage) (any, error)
	// schedules are the task's validated schedules.
	schedules []*schedEntry
}

// Names lists the registered task names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.tasks))
	for n := range r.tasks {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Has reports whether name is registered.
func (r *Registry) Has(name string) bool { return r.lookup(name) != nil }

func (r *Registry) lookup(name string) *taskEntry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.tasks[name]
}

func (r *Registry) add(e *taskEntry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.tasks[e.name]; dup {
		return configErr("task name", "%q is already registered", e.name)
	}
	for _, se := range e.schedules {
		if other := r.schedKeys[se.key]; other != nil {
			return configErr("Schedule", "task %q: schedule %q collides with task %q's", e.name, se.spec.Name, other.task.name)
		}
	}
	r.tasks[e.name] = e
	if r.schedKeys == nil {
		r.schedKeys = map[string]*schedEntry{}
	}
	for _, se := range e.schedules {
		r.schedKeys[se.key] = se
	}
	return nil
}

// Register adds a task to r. A nil fn declares the task for producer-only
// processes (it can be enqueued, and a worker treats it as unknown).
func Register[A, R any](r *Registry, name string, fn TaskFunc[A, R], opts ...TaskOptions) (*Task[A, R], error) {
	if r == nil {
		return nil, configErr("Registry", "is nil")
	}
	if err := queuestype.CheckText("task name", name, queuestype.DefaultLimits().TaskNameBytes); err != nil {
		return nil, err
	}
	if len(opts) > 1 {
		return nil, configErr("TaskOptions", "give at most one")
	}
	var o TaskOptions
	if len(opts) == 1 {
		o = opts[0]
	}
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("task %q: %w", name, err)
	}
	if o.Queue == "" {
		o.Queue = DefaultQueue
	}
	e := &taskEntry{name: name, opts: o, hasFunc: fn != nil}
	e.decode = func(raw json.RawMessage) (any, error) {
		var a A
		if err := decodeArgs(raw, &a); err != nil {
			return nil, err
		}
		return a, nil
	}
	e.isArgs = func(v any) bool { _, ok := v.(A); return ok }
	e.identity = func(decoded any) any {
		a, ok := decoded.(A)
		if !ok {
			return decoded
		}
		if ia, ok := any(a).(IdentityArgser); ok {
			return ia.IdentityArgs()
		}
		if ia, ok := any(&a).(IdentityArgser); ok {
			return ia.IdentityArgs()
		}
		return a
	}
	scheds, err := compileSchedules(e)
	if err != nil {
		return nil, fmt.Errorf("task %q: %w", name, err)
	}
	e.schedules = scheds
	if fn != nil {
		e.run = func(ctx context.Context, raw json.RawMessage) (any, error) {
			var a A
			if err := decodeArgs(raw, &a); err != nil {
				return nil, NonRetryable(fmt.Errorf("decode arguments: %w", err))
			}
			return fn(ctx, a)
		}
	}
	if err := r.add(e); err != nil {
		return nil, err
	}
	return &Task[A, R]{entry: e, fn: fn}, nil
}

// MustRegister is Register that panics on error, for package-level task variables.
func MustRegister[A, R any](r *Registry, name string, fn TaskFunc[A, R], opts ...TaskOptions) *Task[A, R] {
	t, err := Register(r, name, fn, opts...)
	if err != nil {
		panic(err)
	}
	return t
}

// decodeArgs decodes JSON arguments into dst; empty or null input leaves the zero value.
func decodeArgs(raw json.RawMessage, dst any) error {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidArgs, err)
	}
	return nil
}

// Task is a typed handle on a registered task.
type Task[A, R any] struct {
	entry *taskEntry
	fn    TaskFunc[A, R]
	base  EnqueueOptions
}

// Name returns the registered name.
func (t *Task[A, R]) Name() string { return t.entry.name }

// Options returns the task's registered defaults.
func (t *Task[A, R]) Options() TaskOptions { return t.entry.opts }

// With returns a copy of the handle whose enqueues apply o beneath per-call options.
func (t *Task[A, R]) With(o EnqueueOptions) *Task[A, R] {
	c := *t
	c.base = o.merge(t.base)
	return &c
}

// Request builds a bulk-enqueue item for Service.EnqueueMany.
func (t *Task[A, R]) Request(args A, opts ...EnqueueOptions) EnqueueRequest {
	return EnqueueRequest{Task: t.entry.name, Args: args, Options: t.options(opts)}
}

func (t *Task[A, R]) options(opts []EnqueueOptions) EnqueueOptions {
	o := t.base
	for _, x := range opts {
		o = x.merge(o)
	}
	return o
}

// Enqueue stores a record for args on s and returns its handle.
func (t *Task[A, R]) Enqueue(ctx context.Context, s *Service, args A, opts ...EnqueueOptions) (*TaskResult[R], error) {
	res, err := s.enqueueOne(ctx, t.entry, args, nil, t.options(opts))
	if err != nil {
		return nil, err
	}
	return retype[R](res), nil
}

// Call runs the task function directly: no record, no middleware. For tests.
func (t *Task[A, R]) Call(ctx context.Context, args A) (R, error) {
	if t.fn == nil {
		var zero R
		return zero, &UnknownTaskError{Name: t.entry.name}
	}
	return t.fn(ctx, args)
}

// EnqueueRequest is one item of Service.EnqueueMany. Give Args (marshalled to
// JSON) or RawArgs.
type EnqueueRequest struct {
	Task    string
	Args    any
	RawArgs json.RawMessage
	Options EnqueueOptions
}
