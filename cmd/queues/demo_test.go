package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/queuesgo/queues/queuescli"
)

// TestDemo starts `queues demo` on the default backend (./queues.db in its
// working directory): POST /accounts/acct-123/sync answers at once with a
// pending task, which completes within a second; GET /tasks/<id> shows it.
func TestDemo(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.extra = []string{queuescli.EnvBackend + "="} // the default DSN, relative to the working directory
	p := e.start("demo", "--addr", "127.0.0.1:0")
	p.waitStderr(t, "listening on http://", 15*time.Second)
	m := regexp.MustCompile(`listening on http://(\S+)`).FindStringSubmatch(p.stderr.String())
	if m == nil {
		t.Fatalf("no address in %q", p.stderr.String())
	}
	base := "http://" + m[1]
	client := &http.Client{Timeout: 5 * time.Second}

	posted := time.Now()
	resp, err := client.Post(base+"/accounts/acct-123/sync", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST: %d %s", resp.StatusCode, body)
	}
	var created struct {
		TaskID string `json:"task_id"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal(body, &created); err != nil || created.TaskID == "" || created.Status != "pending" {
		t.Fatalf("POST body %s (%v)", body, err)
	}

	var view map[string]any
	for {
		resp, err := client.Get(base + "/tasks/" + created.TaskID)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET: %d %s", resp.StatusCode, body)
		}
		view = nil
		if err := json.Unmarshal(body, &view); err != nil {
			t.Fatalf("GET body %s: %v", body, err)
		}
		if view["status"] == "completed" {
			break
		}
		if time.Since(posted) > time.Second {
			t.Fatalf("not completed within a second: %s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if res, _ := view["result"].(map[string]any); res == nil || res["account_id"] != "acct-123" {
		t.Errorf("stored result: %v", view["result"])
	}
	if _, err := os.Stat(filepath.Join(e.dir, "queues.db")); err != nil {
		t.Errorf("default SQLite file: %v", err)
	}

	// The queues API answers loopback clients that address the server by
	// its own address, and refuses the DNS-rebinding shape.
	api := func(method, host, origin, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+"/queues/api/tasks", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	enqueue := `{"task":"accounts.sync","args":{"account_id":"via-api"}}`
	if code, body := api("POST", "evil", "http://evil", enqueue); code != 403 || !strings.Contains(body, `"forbidden"`) {
		t.Fatalf("rebinding POST = %d %s", code, body)
	}
	if code, body := api("POST", m[1], "", enqueue); code != 201 {
		t.Fatalf("loopback POST = %d %s", code, body)
	}
	if code, body := api("DELETE", m[1], "", ""); code != 405 || !strings.Contains(body, `"method_not_allowed"`) {
		t.Fatalf("DELETE = %d %s", code, body)
	}

	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("demo exit %d: %s", code, p.stderr.String())
	}
	// The record is durable: the CLI reads it back from the same file.
	e.extra = nil
	out := e.mustRun("get", created.TaskID, "--json")
	if !strings.Contains(out, `"status":"completed"`) {
		t.Errorf("get after demo: %s", out)
	}
}

func TestDemoBadAddr(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	code, _, stderr := e.run("demo", "--addr", "256.1.1.1:99999", "--backend", "memory:")
	if code == 0 {
		t.Fatal("exit 0")
	}
	assertOneErrorLine(t, stderr, "listen on 256.1.1.1:99999")
}

// A demo on a non-loopback address would serve its unauthorized API to the
// network: it refuses to start unless --insecure says so.
func TestDemoNonLoopbackNeedsInsecure(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	code, _, stderr := e.run("demo", "--addr", "0.0.0.0:0", "--backend", "memory:")
	if code == 0 {
		t.Fatal("exit 0")
	}
	assertOneErrorLine(t, stderr, "not a loopback address", "--insecure")

	p := e.start("demo", "--addr", "0.0.0.0:0", "--backend", "memory:", "--insecure")
	p.waitStderr(t, "listening on http://", 15*time.Second)
	if !strings.Contains(p.stderr.String(), "--insecure: every client") {
		t.Errorf("no warning for --insecure: %s", p.stderr.String())
	}
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("demo --insecure exit %d: %s", code, p.stderr.String())
	}
}
