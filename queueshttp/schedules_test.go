package queueshttp_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
	"github.com/queuesgo/queues/queueshttp"
)

func TestScheduleRoutes(t *testing.T) {
	reg := queues.NewRegistry()
	queues.MustRegister(reg, "job", func(context.Context, struct{}) (struct{}, error) { return struct{}{}, nil },
		queues.TaskOptions{Schedules: []queues.Schedule{{Name: "hourly", Interval: time.Hour}}})
	svc, err := queues.New(queues.Config{Backend: memory.New(memory.Options{}), Registry: reg, Logger: quiet,
		Worker: queues.WorkerConfig{Placement: queues.PlacementInApp, Queues: []string{"elsewhere"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	mux := http.NewServeMux()
	queueshttp.Mount(mux, "/q", svc, queueshttp.Options{Logger: quiet, Authorize: allowAll})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	call := func(method, path string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b
	}
	status, body := call("GET", "/q/api/schedules")
	var list []map[string]any
	if status != 200 || json.Unmarshal(body, &list) != nil || len(list) != 1 || list[0]["name"] != "job:hourly" ||
		list[0]["interval"] != 3600.0 || list[0]["active"] == nil || list[0]["next_run"] == nil || list[0]["paused"] != false {
		t.Fatalf("GET schedules: %d %s", status, body)
	}
	status, body = call("POST", "/q/api/schedules/job:hourly/pause")
	if status != 200 || !strings.Contains(string(body), `"paused":true`) || !strings.Contains(string(body), `"active":null`) {
		t.Fatalf("pause: %d %s", status, body)
	}
	status, body = call("POST", "/q/api/schedules/job:hourly/resume")
	if status != 200 || !strings.Contains(string(body), `"paused":false`) {
		t.Fatalf("resume: %d %s", status, body)
	}
	status, body = call("POST", "/q/api/schedules/job:hourly/trigger")
	var resp queuesActionBody
	if status != 200 || json.Unmarshal(body, &resp) != nil || resp.TaskID == "" || resp.Schedule.Active == nil || resp.Schedule.Active.ID != resp.TaskID {
		t.Fatalf("trigger: %d %s", status, body)
	}
	if status, body = call("POST", "/q/api/schedules/nope/pause"); status != 404 || !strings.Contains(string(body), "schedule_not_found") {
		t.Fatalf("unknown: %d %s", status, body)
	}
}

type queuesActionBody struct {
	TaskID   string `json:"task_id"`
	Schedule struct {
		Active *struct {
			ID string `json:"id"`
		} `json:"active"`
	} `json:"schedule"`
}
