// Package testservice lets the tests that need a live server (PostgreSQL,
// Redis) skip when it is missing and say so once: each skip is counted
// under its service, and TestMain prints one summary line per missing
// service, so `go test ./...` without the servers does not pass silently.
// With QUEUES_REQUIRE_SERVICES=1 (as CI sets it) a missing server fails
// the test instead.
package testservice

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
)

// EnvRequire is the variable that turns a missing server into a failure.
const EnvRequire = "QUEUES_REQUIRE_SERVICES"

// Required reports whether missing servers must fail the tests.
func Required() bool { return os.Getenv(EnvRequire) == "1" }

type missing struct {
	hint    string
	skipped int
}

var (
	mu   sync.Mutex
	seen = map[string]*missing{}
)

// Unavailable ends t because service (a name and address, e.g.
// "PostgreSQL at postgres://127.0.0.1:5432/test", never a password) did not
// answer: it fails t when EnvRequire is 1, else it counts the skip for the
// summary and skips t. hint says how to point the tests at a server, e.g.
// "set QUEUES_TEST_POSTGRES_URL".
func Unavailable(t testing.TB, service, hint string, err error) {
	t.Helper()
	if Required() {
		t.Fatalf("%s is required (%s=1) but unreachable: %v", service, EnvRequire, err)
	}
	mu.Lock()
	m := seen[service]
	if m == nil {
		m = &missing{hint: hint}
		seen[service] = m
	}
	m.skipped++
	mu.Unlock()
	t.Skipf("%s unreachable (%s; %s=1 makes this fail): %v", service, hint, EnvRequire, err)
}

// Summary returns one line per service that was missing, in name order:
// "SKIP: <service> unreachable: N tests skipped (<hint>, or
// QUEUES_REQUIRE_SERVICES=1 to fail)".
func Summary() []string {
	mu.Lock()
	defer mu.Unlock()
	var lines []string
	for svc, m := range seen {
		noun := "tests"
		if m.skipped == 1 {
			noun = "test"
		}
		lines = append(lines, fmt.Sprintf("SKIP: %s unreachable: %d %s skipped (%s, or %s=1 to fail)", svc, m.skipped, noun, m.hint, EnvRequire))
	}
	sort.Strings(lines)
	return lines
}

// Main runs the tests and prints the summary; a TestMain ends with
// os.Exit(testservice.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	Report()
	return code
}

// Report prints the summary lines. `go test ./...` shows a passing
// package's output only with -v, so without -v the lines go to the
// controlling terminal when there is one, where the developer who ran the
// tests sees them; otherwise (CI logs, -v) they go to stdout.
func Report() {
	lines := Summary()
	if len(lines) == 0 {
		return
	}
	text := strings.Join(lines, "\n") + "\n"
	var w io.Writer = os.Stdout
	if !testing.Verbose() {
		if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
			defer tty.Close()
			w = tty
		}
	}
	_, _ = io.WriteString(w, text)
}

// Redact returns a server URL safe to print: its password replaced by
// "xxxxx".
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}
