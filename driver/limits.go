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
	if err := queuestype.CheckJSON(prefix+"args", p.Args, l.ArgsBytes); err != nil {
		return err
	}
	return queuestype.CheckMetadata(prefix+"metadata", p.Metadata, l.MetadataBytes)
}

// CheckTransitionLimits checks the values a Settle call writes — each
// transition's result and error text — against the hard limits. A store
// calls it first in Settle and, on an error, fails the whole call writing
// nothing. The error is a *queuestype.LimitError naming
// "transitions[i].result" or "transitions[i].error"; it matches
// queuestype.ErrConfig, so the engine classifies it as refused data.
func CheckTransitionLimits(ts []Transition) error {
	for i := range ts {
		prefix := fmt.Sprintf("transitions[%d].", i)
		if err := queuestype.CheckJSON(prefix+"result", ts[i].Result, hardLimits.ResultBytes); err != nil {
			return err
		}
		if err := queuestype.CheckErrorText(prefix+"error", ts[i].Error, hardLimits.ErrorTextBytes); err != nil {
			return err
		}
	}
	return nil
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
