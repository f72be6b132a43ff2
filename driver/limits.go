package driver

import (
	"fmt"
	"time"

	"github.com/queuesgo/queues/queuestype"
)

// hardLimits are the limits every store enforces: the defaults, which a
// service's configuration may only tighten.
var hardLimits = queuestype.DefaultLimits()

// CheckEnqueueLimits checks one Enqueue item against l, with now as the
// reference of its due and expiry times. Field names in the returned
// *queuestype.LimitError start with prefix ("" or "items[2]."). The store
// calls it through PrepareEnqueue with the hard limits; the service calls
// it with its configured limits before any store call.
func CheckEnqueueLimits(l queuestype.Limits, prefix string, p EnqueueParams, now time.Time) error {
	if err := queuestype.CheckText(prefix+"task", p.TaskName, l.TaskNameBytes); err != nil {
		return err
	}
	if err := queuestype.CheckCharsetName(prefix+"queue", p.Queue, l.QueueNameBytes); err != nil {
		return err
	}
	if err := queuestype.CheckRange(prefix+"priority", p.Priority, queuestype.MinPriority, queuestype.MaxPriority); err != nil {
		return err
	}
	if err := queuestype.CheckRange(prefix+"max_retries", p.MaxRetries, 0, l.MaxRetries); err != nil {
		return err
	}
	if p.Key != "" {
		if err := queuestype.CheckText(prefix+"key", p.Key, l.KeyBytes); err != nil {
			return err
		}
	}
	if err := queuestype.CheckCharsetName(prefix+"execution_backend", p.ExecutionBackend, l.ExecutionNameBytes); err != nil {
		return err
	}
	if p.ExecutionProfile != "" {
		if err := queuestype.CheckCharsetName(prefix+"execution_profile", p.ExecutionProfile, l.ExecutionNameBytes); err != nil {
			return err
		}
	}
	if err := queuestype.CheckDuration(prefix+"timeout", p.Policy.Timeout, l.MaxTimeout); err != nil {
		return err
	}
	if err := l.CheckSchedule(prefix, now, p.ScheduledAt, p.ExpiresAt); err != nil {
		return err
	}
	if err := queuestype.CheckTags(prefix+"tags", p.Tags, l.MaxTags, l.TagBytes); err != nil {
		return err
	}
	if err := queuestype.CheckJSON(prefix+"args", p.Args, l.ArgsBytes); err != nil {
		return err
	}
	return queuestype.CheckMetadata(prefix+"metadata", p.Metadata, l.MetadataBytes)
}

// CheckTransition returns the per-transition error a store reports for t
// before writing anything for it: CheckSettleTo's, or a
// *queuestype.LimitError on "result" when the result is over the hard
// limit or is not valid UTF-8 JSON without NUL (queuestype.CheckJSON). It
// matches queuestype.ErrConfig, so the engine classifies it as refused
// data. The store applies the call's other transitions.
func CheckTransition(t *Transition) error {
	if err := CheckSettleTo(t); err != nil {
		return err
	}
	return queuestype.CheckJSON("result", t.Result, hardLimits.ResultBytes)
}

// FitSettleTexts returns ts with every error text in the form
// queuestype.FitErrorText gives it under the hard limit (NUL and invalid
// UTF-8 replaced, truncated with a marker): a failure must always be
// recordable, so a store never refuses an error text. ts itself is
// returned when no text changes, else a copy; the caller's slice is never
// modified. Every store calls it first in Settle.
func FitSettleTexts(ts []Transition) []Transition {
	var out []Transition
	for i := range ts {
		fit := queuestype.FitErrorText(ts[i].Error, hardLimits.ErrorTextBytes)
		if fit == ts[i].Error {
			continue
		}
		if out == nil {
			out = append([]Transition(nil), ts...)
		}
		out[i].Error = fit
	}
	if out == nil {
		return ts
	}
	return out
}

// CheckHeartbeatLimits checks the metadata patches a TouchHeartbeats call
// writes against the hard event payload limit. A store calls it first in
// TouchHeartbeats and, on an error, fails the whole call writing nothing.
func CheckHeartbeatLimits(touches []HeartbeatTouch) error {
	for i := range touches {
		if err := queuestype.CheckMetadata(fmt.Sprintf("touches[%d].metadata_patch", i), touches[i].MetadataPatch, hardLimits.EventPayloadBytes); err != nil {
			return err
		}
	}
	return nil
}
