package driver

import "context"

// Pinger is the optional capability of a store that can tell cheaply
// whether it is reachable and usable, for readiness checks. Ping does the
// least work that proves the store answers (a round trip to the server, a
// read of the database header); it writes nothing. A store that is closed
// reports an error matching queuestype.ErrClosed. Callers bound it with a
// short ctx deadline.
type Pinger interface {
	Ping(ctx context.Context) error
}
