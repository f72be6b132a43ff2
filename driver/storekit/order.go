package storekit

import (
	"bytes"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/queuestype"
)

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
