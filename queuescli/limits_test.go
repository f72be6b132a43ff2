package queuescli_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/queuesgo/queues/queuescli"
)

// An enqueue over a limit prints one error line naming the field and the
// limit, and exits non-zero.
func TestEnqueueLimitErrors(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "q.db")
	if code, _, stderr := run(t, queuescli.Options{}, "migrate", "--backend", db); code != 0 {
		t.Fatalf("migrate: exit %d: %s", code, stderr)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--args", `{"s":"\u0000"}`}, `error: enqueue demo.echo: queues: args: \u0000 escape at offset 6`},
		{[]string{"--args", `{"s":"` + strings.Repeat("x", 1<<20) + `"}`}, "error: enqueue demo.echo: queues: args: 1048584 bytes is too large (limit 1048576 bytes)"},
		{[]string{"--queue", " "}, "error: enqueue demo.echo: queues: queue: byte 0 (' ') is not allowed"},
		{[]string{"--key", strings.Repeat("k", 100_000)}, "error: enqueue demo.echo: queues: key: 100000 bytes is too long"},
		{[]string{"--retries", "2147483647"}, "error: enqueue demo.echo: queues: max_retries: 2147483647 is out of range (limit 0..1000)"},
		{[]string{"--execution-backend", "no such"}, "error: "},
	}
	for _, c := range cases {
		args := append([]string{"enqueue", "demo.echo", "--backend", db}, c.args...)
		code, stdout, stderr := run(t, queuescli.Options{}, args...)
		if code == 0 {
			t.Fatalf("%.80v: exit 0 (stdout %q)", c.args, stdout)
		}
		if line := oneErrorLine(t, stderr); !strings.HasPrefix(line, c.want) {
			t.Errorf("%.80v: stderr %q, want it to start with %q", c.args, line, c.want)
		}
	}
	code, out, stderr := run(t, queuescli.Options{}, "status", "--backend", db, "--json")
	if code != 0 || !strings.Contains(out, `"total":0`) {
		t.Fatalf("status after refused enqueues: exit %d %q %q", code, out, stderr)
	}
}
