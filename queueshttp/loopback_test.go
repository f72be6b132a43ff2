package queueshttp_test

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/queuesgo/queues/queueshttp"
)

func TestIsLoopbackAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8000": true, "localhost:8000": true, "LOCALHOST:1": true, "[::1]:8000": true,
		"127.0.0.2:80": true, "::1": true, "localhost": true,
		":8000": false, "0.0.0.0:8000": false, "[::]:8000": false, "192.168.1.5:8000": false,
		"example.com:8000": false, "": false,
	} {
		if got := queueshttp.IsLoopbackAddr(addr); got != want {
			t.Errorf("IsLoopbackAddr(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestLoopbackOnly(t *testing.T) {
	check := queueshttp.LoopbackOnly("127.0.0.1:8000", "[::1]:9000")
	for _, c := range []struct {
		name, remote, host, origin string
		ok                         bool
	}{
		{"ip", "127.0.0.1:5000", "127.0.0.1:8000", "", true},
		{"localhost", "127.0.0.1:5000", "localhost:8000", "", true},
		{"localhost any case", "127.0.0.1:5000", "LocalHost:8000", "", true},
		{"ipv6", "[::1]:5000", "[::1]:9000", "", true},
		{"ipv6 localhost", "[::1]:5000", "localhost:9000", "", true},
		{"same origin", "127.0.0.1:5000", "127.0.0.1:8000", "http://127.0.0.1:8000", true},
		{"localhost origin", "127.0.0.1:5000", "localhost:8000", "http://localhost:8000", true},
		{"rebinding host", "127.0.0.1:5000", "evil.example:8000", "", false},
		{"rebinding host and origin", "127.0.0.1:5000", "evil", "http://evil", false},
		{"foreign origin", "127.0.0.1:5000", "127.0.0.1:8000", "http://evil.example", false},
		{"null origin", "127.0.0.1:5000", "127.0.0.1:8000", "null", false},
		{"origin other port", "127.0.0.1:5000", "127.0.0.1:8000", "http://127.0.0.1:8001", false},
		{"other port", "127.0.0.1:5000", "127.0.0.1:8001", "", false},
		{"no port", "127.0.0.1:5000", "127.0.0.1", "", false},
		{"ipv6 on the ipv4 port", "127.0.0.1:5000", "[::1]:8000", "", false},
		{"remote peer", "192.0.2.1:5000", "127.0.0.1:8000", "", false},
		{"empty host", "127.0.0.1:5000", "", "", false},
	} {
		r := httptest.NewRequest("GET", "/api/stats", nil)
		r.RemoteAddr, r.Host = c.remote, c.host
		if c.origin != "" {
			r.Header.Set("Origin", c.origin)
		}
		err := check(r)
		if (err == nil) != c.ok {
			t.Errorf("%s: err = %v, want ok=%v", c.name, err, c.ok)
		}
		if err != nil && !errors.Is(err, queueshttp.ErrNotLoopback) {
			t.Errorf("%s: err %v does not match ErrNotLoopback", c.name, err)
		}
	}

	port80 := queueshttp.LoopbackOnly("localhost:80")
	for _, host := range []string{"localhost", "localhost:80", "127.0.0.1", "[::1]", "[::1]:80"} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr, r.Host = "127.0.0.1:1", host
		if err := port80(r); err != nil {
			t.Errorf("port 80, Host %q: %v", host, err)
		}
	}

	for _, bad := range [][]string{nil, {"0.0.0.0:8000"}, {":8000"}, {"127.0.0.1"}, {"example.com:80"}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("LoopbackOnly(%q) did not panic", bad)
				}
			}()
			queueshttp.LoopbackOnly(bad...)
		}()
	}
}

// The DNS-rebinding shape against a real loopback server: a POST whose Host
// and Origin name another site is refused, and nothing is stored.
func TestLoopbackOnlyRefusesRebinding(t *testing.T) {
	f := newFixture(t, fixtureConfig{noAuth: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	queueshttp.Mount(mux, "/queues", f.svc, queueshttp.Options{Logger: quiet, Authorize: queueshttp.LoopbackOnly(ln.Addr().String())})
	srv := httptest.NewUnstartedServer(mux)
	_ = srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)

	post := func(host, origin string) (int, string) {
		req, err := http.NewRequestWithContext(t.Context(), "POST", srv.URL+"/queues/api/tasks", strings.NewReader(`{"task":"test.echo"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		code, _ := m["error"].(string)
		return resp.StatusCode, code
	}
	if status, code := post("evil", "http://evil"); status != 403 || code != "forbidden" {
		t.Fatalf("rebinding POST = %d %q, want 403 forbidden", status, code)
	}
	if st, _ := f.svc.Statistics(t.Context(), ""); st.Total != 0 {
		t.Fatalf("the refused POST stored %d records", st.Total)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	if status, _ := post("localhost:"+port, "http://localhost:"+port); status != 201 {
		t.Fatalf("POST from the page the server serves = %d, want 201", status)
	}
	if status, _ := post(ln.Addr().String(), ""); status != 201 {
		t.Fatalf("curl-style POST = %d, want 201", status)
	}
	if st, _ := f.svc.Statistics(t.Context(), ""); st.Total != 2 {
		t.Fatalf("stored %d records, want 2", st.Total)
	}
}
