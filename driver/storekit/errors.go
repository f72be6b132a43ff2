package storekit

import (
	"fmt"
	"regexp"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/queuestype"
)

// FenceLost returns an error matching queuestype.ErrFenceLost for a guarded
// write op on record id whose guard did not hold.
func FenceLost(op string, id uuid.UUID) error {
	return fmt.Errorf("%w: %s %s", queuestype.ErrFenceLost, op, id)
}

// NotFound returns an error matching queuestype.ErrTaskNotFound for id.
func NotFound(id uuid.UUID) error {
	return fmt.Errorf("%w: %s", queuestype.ErrTaskNotFound, id)
}

// MissingForWrite returns the error of a guarded write op on an ID that does
// not exist: the guard did not hold because there is no record, so it
// matches both queuestype.ErrFenceLost and queuestype.ErrTaskNotFound.
func MissingForWrite(op string, id uuid.UUID) error {
	return fmt.Errorf("%w: %s %s: %w", queuestype.ErrFenceLost, op, id, queuestype.ErrTaskNotFound)
}

// KeyConflict returns the per-item error of a forever Enqueue item whose key
// an earlier, non-forever item of the same call inserts. It matches
// queuestype.ErrIdentityConflict.
func KeyConflict(key string) error {
	return fmt.Errorf("%w: key %q", queuestype.ErrIdentityConflict, key)
}

// KeyHeld returns the per-item error of a forever Enqueue item whose key an
// active non-forever record (holder, the record's ID) holds. It matches
// queuestype.ErrIdentityConflict.
func KeyHeld(key, holder string) error {
	return fmt.Errorf("%w: key %q is held by task %s", queuestype.ErrIdentityConflict, key, holder)
}

// CheckLock validates the arguments of driver.Locker.AcquireLock: a
// positive ttl and a non-empty token. It returns an error matching
// queuestype.ErrConfig otherwise.
func CheckLock(ttl time.Duration, token string) error {
	if ttl <= 0 {
		return fmt.Errorf("%w: lock ttl must be positive, got %s", queuestype.ErrConfig, ttl)
	}
	if token == "" {
		return fmt.Errorf("%w: lock token must not be empty", queuestype.ErrConfig)
	}
	return nil
}

// NamespacePattern is the rule a namespace root follows (the rule of
// queues.Config.Namespace): lower-case words of letters and digits joined
// by single underscores, starting with a letter.
var NamespacePattern = regexp.MustCompile(`^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$`)

// Namespace returns the namespace root a store option names:
// queuestype.DefaultNamespace when ns is empty, else ns when it matches
// NamespacePattern and, with maxLen > 0, is at most maxLen bytes. Anything
// else returns a *queuestype.ConfigError naming field.
func Namespace(field, ns string, maxLen int) (string, error) {
	if ns == "" {
		return queuestype.DefaultNamespace, nil
	}
	if maxLen > 0 && (!NamespacePattern.MatchString(ns) || len(ns) > maxLen) {
		return "", &queuestype.ConfigError{Field: field,
			Problem: fmt.Sprintf("%q must match %s and be at most %d bytes", ns, NamespacePattern, maxLen)}
	}
	if !NamespacePattern.MatchString(ns) {
		return "", &queuestype.ConfigError{Field: field, Problem: fmt.Sprintf("%q must match %s", ns, NamespacePattern)}
	}
	return ns, nil
}
