package redis

import (
	"errors"
	"strings"

	"github.com/queuesgo/queues/driver"
	goredis "github.com/redis/go-redis/v9"
)

var _ driver.ErrorClassifier = (*Backend)(nil)

// ClassifyError recognises the errors of go-redis and of the Redis server
// (driver.ErrorClassifier): server replies that say "not now" (LOADING,
// READONLY, MASTERDOWN, TRYAGAIN, CLUSTERDOWN, BUSY, max clients), a pool
// that timed out waiting for a connection, and authentication or
// permission failures. It returns driver.ClassUnknown for anything else,
// which driver.Classify hands on to driver.DefaultClassify (network errors,
// timeouts, io.EOF from a server that went away).
func (b *Backend) ClassifyError(err error) driver.ErrorClass { return classifyRedisError(err) }

func classifyRedisError(err error) driver.ErrorClass {
	switch {
	case err == nil, errors.Is(err, goredis.Nil):
		return driver.ClassUnknown
	case errors.Is(err, goredis.ErrPoolTimeout), errors.Is(err, goredis.ErrPoolExhausted),
		goredis.IsLoadingError(err), goredis.IsReadOnlyError(err), goredis.IsMasterDownError(err),
		goredis.IsTryAgainError(err), goredis.IsClusterDownError(err), goredis.IsMaxClientsError(err),
		goredis.IsNoReplicasError(err):
		return driver.ClassTransient
	case goredis.IsAuthError(err), goredis.IsPermissionError(err), goredis.IsOOMError(err),
		errors.Is(err, goredis.ErrClosed):
		return driver.ClassPermanent
	}
	var re goredis.Error
	if errors.As(err, &re) {
		msg := strings.TrimPrefix(re.Error(), "ERR ")
		switch {
		case strings.HasPrefix(msg, "BUSY "):
			// A script ran past lua-time-limit; the server answers again once it ends.
			return driver.ClassTransient
		case strings.HasPrefix(msg, "MISCONF "):
			// Writes refused after a failed RDB save: a disk for an operator to fix.
			return driver.ClassPermanent
		}
	}
	return driver.ClassUnknown
}
