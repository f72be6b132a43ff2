package queues

import (
	"fmt"

	"github.com/queuesgo/queues/internal/canonjson"
	"github.com/queuesgo/queues/queuestype"
)

// Identity key prefix and version: a key reads "q:u:v1:<mode>:<hash>".
const (
	identityPrefix  = "q:u:"
	identityVersion = "v1"
)

type identity struct {
	key     string
	forever bool
	by      string // UniqueBy of a derived key
	until   string // UniqueForever for a forever key
}

// resolveIdentity applies the precedence option Key → task Key → UniqueBy task
// → UniqueBy arguments → none. decoded is the typed arguments value.
func (s *Service) resolveIdentity(e *taskEntry, optKey string, decoded any) (identity, error) {
	forever := e.opts.UniqueUntil == UniqueUntilForever
	var id identity
	switch {
	case optKey != "":
		id.key = optKey
	case e.opts.Key != "":
		id.key = e.opts.Key
	case e.opts.UniqueBy == UniqueByTask:
		sum, err := identityHash(map[string]any{"task": e.name, "version": identityVersion})
		if err != nil {
			return id, err
		}
		id.key = identityPrefix + identityVersion + ":task:" + sum
		id.by = string(UniqueByTask)
	case e.opts.UniqueBy == UniqueByArguments:
		args := e.identity(decoded)
		if limit := s.cfg.MaxArgumentIdentityBytes; limit > 0 {
			b, err := canonjson.Marshal(args)
			if err != nil {
				return id, fmt.Errorf("%w: %v", ErrIdentity, err)
			}
			if len(b) > limit {
				return id, &IdentityTooLargeError{Actual: len(b), Max: limit}
			}
		}
		sum, err := identityHash(map[string]any{"arguments": args, "task": e.name, "version": identityVersion})
		if err != nil {
			return id, err
		}
		id.key = identityPrefix + identityVersion + ":arguments:" + sum
		id.by = string(UniqueByArguments)
	default:
		return id, nil
	}
	if forever {
		id.forever = true
		id.until = queuestype.UniqueForever
	}
	return id, nil
}

func identityHash(v any) (string, error) {
	b, err := canonjson.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrIdentity, err)
	}
	return canonjson.SHA256Hex(b), nil
}
