package storekit

import (
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// Defaults of the limit arguments of driver.Backend and driver.Inspector
// methods, used when the caller passes a limit ≤ 0.
const (
	// DefaultPendingLimit is ListPending's limit.
	DefaultPendingLimit = 100
	// DefaultExpireLimit is ExpireOverdue's limit.
	DefaultExpireLimit = 100
	// DefaultCleanupLimit is CleanupTerminal's limit.
	DefaultCleanupLimit = 100
	// DefaultCompletedLimit is ListCompletedByTask's limit.
	DefaultCompletedLimit = 10
	// DefaultPageLimit is the page size of Inspector.ListTasks.
	DefaultPageLimit = 50
)

// Limit returns n, or def when n ≤ 0.
func Limit(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

// Page builds a ListTasks page from up to limit+1 records read newest
// first: the first limit records are the page, and when there are more,
// NextCursor is the ID of the page's last record. A nil recs gives an
// empty, non-nil Items.
func Page(recs []*queuestype.Record, limit int) driver.TaskPage {
	var page driver.TaskPage
	if len(recs) > limit {
		recs = recs[:limit]
		page.NextCursor = recs[limit-1].ID
	}
	if recs == nil {
		recs = []*queuestype.Record{}
	}
	page.Items = recs
	return page
}

// CursorTime returns the creation time a UUIDv7 ListTasks cursor carries,
// which places a cursor whose record was deleted. ok is false for any other
// UUID version: such a cursor places nothing.
func CursorTime(cursor uuid.UUID) (t time.Time, ok bool) {
	if cursor.Version() != 7 {
		return time.Time{}, false
	}
	sec, nsec := cursor.Time().UnixTime()
	return time.Unix(sec, nsec).UTC(), true
}
