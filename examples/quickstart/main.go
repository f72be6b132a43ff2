// Command quickstart registers a task, starts a service with an in-app worker
// on the in-process memory backend, enqueues a few records, streams their
// lifecycle events and prints the results.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
	"github.com/queuesgo/queues/events"
)

// SyncAccount is the typed argument of the account-sync task (JSON on the wire).
type SyncAccount struct {
	AccountID string `json:"account_id"`
	Pages     int    `json:"pages"`
}

// SyncResult is what the task returns; it is stored on the record.
type SyncResult struct {
	Synced int `json:"synced"`
}

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	reg := queues.NewRegistry()
	syncAccount := queues.MustRegister(reg, "accounts.sync",
		func(ctx context.Context, a SyncAccount) (SyncResult, error) {
			if a.AccountID == "" {
				return SyncResult{}, queues.NonRetryable(errors.New("account_id is required"))
			}
			for page := 1; page <= a.Pages; page++ {
				if err := ctx.Err(); err != nil {
					return SyncResult{}, context.Cause(ctx)
				}
				queues.Beat(ctx, fmt.Sprintf("page %d", page))
				_ = queues.Progress(ctx, queues.ProgressUpdate{Current: float64(page), Total: float64(a.Pages)})
				time.Sleep(20 * time.Millisecond) // the slow third-party call
			}
			return SyncResult{Synced: a.Pages}, nil
		},
		queues.TaskOptions{Retries: 3, RetryBackoff: queues.ExponentialBackoff(time.Second, time.Minute), Timeout: time.Minute})

	broker := events.NewMemoryBroker(events.MemoryBrokerOptions{})
	svc, err := queues.New(queues.Config{
		Backend:  memory.New(memory.Options{}),
		Registry: reg,
		Worker:   queues.WorkerConfig{Placement: queues.PlacementInApp, ID: "quickstart-worker", MaxConcurrency: 4},
		Events:   &queues.EventsConfig{Broker: broker},
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	ctx := context.Background()
	sub, err := broker.Subscribe(ctx, events.GlobalChannel(svc.Namespace()), events.QueueChannel(svc.Namespace(), "default"))
	if err != nil {
		return err
	}
	defer sub.Close()
	completions := make(chan struct{}, 16)
	go func() {
		for msg := range sub.C() {
			var ev events.Event
			if ev.UnmarshalJSON(msg.Data) != nil || ev.Type == events.TypeProgress {
				continue
			}
			fmt.Printf("event %-15s task=…%s attempt=%d\n", ev.Type, ev.TaskID[len(ev.TaskID)-8:], deref(ev.Attempt))
			if ev.Type == events.TypeCompleted {
				completions <- struct{}{}
			}
		}
	}()

	if err := svc.Start(ctx); err != nil {
		return err
	}
	defer svc.Close(ctx)

	var handles []*queues.TaskResult[SyncResult]
	for _, id := range []string{"acct-1", "acct-2", "acct-3"} {
		res, err := syncAccount.Enqueue(ctx, svc, SyncAccount{AccountID: id, Pages: 5})
		if err != nil {
			return err
		}
		handles = append(handles, res)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, h := range handles {
		rec, err := h.Wait(waitCtx)
		if err != nil {
			return err
		}
		v, err := h.Value()
		fmt.Printf("task …%s %s: synced %d pages (err=%v)\n", rec.ID.String()[28:], rec.Status, v.Synced, err)
	}
	for range handles { // live events arrive asynchronously; wait for the last ones
		select {
		case <-completions:
		case <-waitCtx.Done():
			return waitCtx.Err()
		}
	}
	st, err := svc.Statistics(ctx, "")
	if err != nil {
		return err
	}
	fmt.Printf("statistics: %+v\n", st)
	return nil
}

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}
