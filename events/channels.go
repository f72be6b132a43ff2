package events

import (
	"strings"

	"golang.org/x/text/unicode/norm"
)

// DefaultNamespace is the namespace root used when an empty root is given.
const DefaultNamespace = "queues"

// IsFlushFirst reports whether events of this type flush buffered events of
// the same key and are delivered immediately: task.completed,
// task.failed, task.cancelled, task.interrupted, task.snoozed,
// task.claim_lost and task.stale_failed. task.expired is not flush-first.
func IsFlushFirst(eventType string) bool {
	switch eventType {
	case TypeCompleted, TypeFailed, TypeCancelled, TypeInterrupted, TypeSnoozed, TypeClaimLost, TypeStaleFailed:
		return true
	}
	return false
}

// IsLifecycle reports whether the type is a lifecycle type: the flush-first
// set plus task.started. With ChannelOptions.PublishGlobalLifecycle these are
// also published on the global channel.
func IsLifecycle(eventType string) bool {
	return eventType == TypeStarted || IsFlushFirst(eventType)
}

// NormalizeChannelPart normalizes one name part of a channel:
// NFKD decomposition, non-ASCII characters dropped, ASCII lowercased, every
// run of characters outside [a-z0-9_.-] (plus ':' when allowColon, as for
// custom keys) replaced by a single '_', then leading and trailing '_'
// trimmed. Underscores already present are kept as they are. An empty result
// becomes "unknown".
//
// Examples: "Crème Brûlée!!" → "creme_brulee", "" → "unknown",
// "Tenant:42/Report" → "tenant:42_report" with allowColon, "tenant_42_report"
// without.
func NormalizeChannelPart(s string, allowColon bool) string {
	s = norm.NFKD.String(s)
	var b strings.Builder
	b.Grow(len(s))
	inRun := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			continue // non-ASCII (including combining marks left by NFKD) is dropped
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		ok := ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') || c == '_' || c == '.' || c == '-' || (allowColon && c == ':')
		if ok {
			b.WriteByte(c)
			inRun = false
			continue
		}
		if !inRun {
			b.WriteByte('_')
			inRun = true
		}
	}
	out := strings.Trim(b.String(), "_")
	if out == "" {
		return "unknown"
	}
	return out
}

func root(ns string) string {
	if ns == "" {
		return DefaultNamespace
	}
	return ns
}

// TaskChannel returns "<ns>:task:<id>:events" with id normalized.
func TaskChannel(ns, id string) string {
	return root(ns) + ":task:" + NormalizeChannelPart(id, false) + ":events"
}

// QueueChannel returns "<ns>:queue:<name>:events" with name normalized.
func QueueChannel(ns, name string) string {
	return root(ns) + ":queue:" + NormalizeChannelPart(name, false) + ":events"
}

// WorkerChannel returns "<ns>:worker:<id>:events" with id normalized.
func WorkerChannel(ns, id string) string {
	return root(ns) + ":worker:" + NormalizeChannelPart(id, false) + ":events"
}

// GlobalChannel returns "<ns>:global:events".
func GlobalChannel(ns string) string {
	return root(ns) + ":global:events"
}

// CustomChannel returns "<ns>:custom:<key>:events" with key normalized
// (colons are kept in custom keys).
func CustomChannel(ns, key string) string {
	return root(ns) + ":custom:" + NormalizeChannelPart(key, true) + ":events"
}

// ChannelOptions adjusts the channel set computed by Channels.
type ChannelOptions struct {
	// SkipTaskChannel suppresses the per-task channel.
	SkipTaskChannel bool
	// SkipQueueChannel suppresses the queue channel derived from Event.Queue
	// (a scope=queue event still goes to the queue channel of its scope key).
	SkipQueueChannel bool
	// PublishGlobalLifecycle also publishes lifecycle events (IsLifecycle)
	// on the global channel.
	PublishGlobalLifecycle bool
	// Extra are explicit, fully formed channel names appended as given
	// (not normalized); empty strings are ignored.
	Extra []string
}

// Channels returns the channels an event is published on, in
// this order and without duplicates:
//
//  1. the task channel when TaskID is set (unless SkipTaskChannel);
//  2. the queue channel of ScopeKey for scope=queue with a ScopeKey;
//  3. the queue channel of Queue when set (unless SkipQueueChannel);
//  4. the worker channel for scope=worker (key: ScopeKey, else WorkerID);
//  5. the global channel for scope=global;
//  6. the custom channel of ScopeKey for scope=custom;
//  7. the global channel for lifecycle types when PublishGlobalLifecycle;
//  8. the Extra channels.
//
// When none applies the result is the global channel alone. ns is the
// namespace root ("" means DefaultNamespace). A nil event yields the global
// channel.
func Channels(ns string, e *Event, o ChannelOptions) []string {
	if e == nil {
		return []string{GlobalChannel(ns)}
	}
	out := make([]string, 0, 4)
	add := func(c string) {
		if c == "" {
			return
		}
		for _, have := range out {
			if have == c {
				return
			}
		}
		out = append(out, c)
	}
	if e.TaskID != "" && !o.SkipTaskChannel {
		add(TaskChannel(ns, e.TaskID))
	}
	if e.Scope == ScopeQueue && e.ScopeKey != "" {
		add(QueueChannel(ns, e.ScopeKey))
	}
	if e.Queue != "" && !o.SkipQueueChannel {
		add(QueueChannel(ns, e.Queue))
	}
	if e.Scope == ScopeWorker {
		key := e.ScopeKey
		if key == "" {
			key = e.WorkerID
		}
		add(WorkerChannel(ns, key))
	}
	if e.Scope == ScopeGlobal {
		add(GlobalChannel(ns))
	}
	if e.Scope == ScopeCustom {
		add(CustomChannel(ns, e.ScopeKey))
	}
	if o.PublishGlobalLifecycle && IsLifecycle(e.Type) {
		add(GlobalChannel(ns))
	}
	for _, c := range o.Extra {
		add(c)
	}
	if len(out) == 0 {
		out = append(out, GlobalChannel(ns))
	}
	return out
}
