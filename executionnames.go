package queues

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// knownExecutionBackends returns the execution backends cfg knows: the
// built-in ones, the default, the configured transports and the names
// declared as served elsewhere.
func knownExecutionBackends(cfg Config) (map[string]bool, string) {
	known := map[string]bool{ExecutionLocal: true, ExecutionImmediate: true, cfg.ExecutionBackend: true}
	for _, ex := range cfg.Executors {
		known[ex.Name()] = true
	}
	for _, name := range cfg.ExternalExecutionBackends {
		known[name] = true
	}
	names := make([]string, 0, len(known))
	for name := range known {
		names = append(names, name)
	}
	slices.Sort(names)
	return known, strings.Join(names, ", ")
}

// checkExecutionBackend refuses a record for an execution backend nothing
// in this service knows: no worker would ever claim or dispatch it, and it
// would stay pending without a word.
func (s *Service) checkExecutionBackend(name string) error {
	if s.knownExec[name] {
		return nil
	}
	return configErr("ExecutionBackend", "unknown execution backend %q (known: %s); declare a transport another process serves in Config.ExternalExecutionBackends",
		name, s.knownExecList)
}

// prepare runs prepareItem, then refuses an execution backend nothing in
// this service knows. It runs last, so an input the limits refuse (a name
// too long, a control character) gets the limits' typed error first.
func (s *Service) prepare(ctx context.Context, e *taskEntry, typed any, raw json.RawMessage, o EnqueueOptions, isRaw bool) (prepared, error) {
	p, err := s.prepareItem(ctx, e, typed, raw, o, isRaw)
	if err != nil {
		return prepared{}, err
	}
	if err := s.checkExecutionBackend(p.params.ExecutionBackend); err != nil {
		return prepared{}, fmt.Errorf("task %q: %w", e.name, err)
	}
	return p, nil
}
