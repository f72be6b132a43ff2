package queues

import "context"

// Handler runs one attempt of a record and returns its result value.
type Handler func(ctx context.Context, rec *Record) (result any, err error)

// Middleware wraps every attempt. Acquire dependencies before calling next,
// put them into ctx, and release them in a defer so cleanup runs exactly once
// on every outcome. Config.Middleware wraps outermost-first, then the task's
// own TaskOptions.Middleware.
type Middleware func(next Handler) Handler

func chain(h Handler, layers ...[]Middleware) Handler {
	for i := len(layers) - 1; i >= 0; i-- {
		mws := layers[i]
		for j := len(mws) - 1; j >= 0; j-- {
			h = mws[j](h)
		}
	}
	return h
}
