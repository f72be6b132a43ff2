package sqlite

import (
	"context"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
)

// ReserveIdentity reserves r.Key for r.TaskID. It returns nil when the caller
// won, else the existing owner. A zero CreatedAt is stamped with now.
func (b *Backend) ReserveIdentity(ctx context.Context, r queuestype.Reservation) (*queuestype.Reservation, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w, _, err := b.handles()
	if err != nil {
		return nil, err
	}
	var owner *queuestype.Reservation
	err = w.do(ctx, false, func(tx *wtx) error {
		created := r.CreatedAt
		if created.IsZero() {
			created = b.now()
		}
		n, err := tx.exec(`INSERT INTO queue_task_reservation (identity_key, task_id, task_name, created_at)
VALUES (?, ?, ?, ?) ON CONFLICT (identity_key) DO NOTHING`, r.Key, r.TaskID.String(), r.TaskName, micros(created))
		if err != nil || n == 1 {
			owner = nil
			return err
		}
		owner, err = getReservation(tx, r.Key)
		return err
	})
	return owner, err
}

// ResetIdentity deletes the reservation for key. A non-zero expectedTaskID
// must equal the owner. It reports whether a reservation was deleted.
func (b *Backend) ResetIdentity(ctx context.Context, key string, expectedTaskID uuid.UUID) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	w, _, err := b.handles()
	if err != nil {
		return false, err
	}
	var expected any
	if expectedTaskID != uuid.Nil {
		expected = expectedTaskID.String()
	}
	var n int64
	err = w.do(ctx, false, func(tx *wtx) error {
		var err error
		n, err = tx.exec(`DELETE FROM queue_task_reservation WHERE identity_key = ?1 AND (?2 IS NULL OR task_id = ?2)`, key, expected)
		return err
	})
	return n > 0, err
}

var _ driver.Locker = (*Backend)(nil)

// AcquireLock takes the named lock (a row of queue_maintenance) for token
// until now+ttl. It succeeds when the lock is free, expired, or already held
// by token (which refreshes the expiry). ttl must be positive and token
// non-empty. It fails closed: an error means not acquired.
func (b *Backend) AcquireLock(ctx context.Context, name, token string, ttl time.Duration) (bool, error) {
	if err := driver.CheckLockArgs(ctx, ttl, token); err != nil {
		return false, err
	}
	w, _, err := b.handles()
	if err != nil {
		return false, err
	}
	var n int64
	err = w.do(ctx, false, func(tx *wtx) error {
		now := b.now()
		var err error
		n, err = tx.exec(`INSERT INTO queue_maintenance (name, token, expires_at) VALUES (?1, ?2, ?3)
ON CONFLICT (name) DO UPDATE SET token = excluded.token, expires_at = excluded.expires_at
WHERE queue_maintenance.expires_at <= ?4 OR queue_maintenance.token = excluded.token`,
			name, token, micros(now.Add(ttl)), micros(now))
		return err
	})
	return err == nil && n > 0, err
}

// ReleaseLock releases the named lock if token holds it; it reports whether
// it did.
func (b *Backend) ReleaseLock(ctx context.Context, name, token string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	w, _, err := b.handles()
	if err != nil {
		return false, err
	}
	var n int64
	err = w.do(ctx, false, func(tx *wtx) error {
		var err error
		n, err = tx.exec(`DELETE FROM queue_maintenance WHERE name = ? AND token = ?`, name, token)
		return err
	})
	return n > 0, err
}
