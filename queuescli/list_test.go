package queuescli_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/queuescli"
)

// queues list filters by tag (with the other filters), prints a table or
// a JSON array, and refuses bad flags.
func TestListCommand(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "app.db")
	opts := queuescli.Options{}
	must := func(args ...string) string {
		t.Helper()
		code, out, stderr := run(t, opts, append(args, "--backend", db)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		return out
	}
	enqueue := func(args ...string) queues.Record {
		t.Helper()
		var rec queues.Record
		if err := json.Unmarshal([]byte(must(append([]string{"enqueue", "demo.echo", "--json"}, args...)...)), &rec); err != nil {
			t.Fatal(err)
		}
		return rec
	}
	must("migrate")
	a := enqueue("--tag", "red", "--tag", "blue", "--tag", "red")
	b := enqueue("--tag", "red", "--queue", "mail")
	c := enqueue()
	if strings.Join(a.Tags, ",") != "blue,red" {
		t.Fatalf("enqueued tags = %q", a.Tags)
	}
	list := func(args ...string) []string {
		t.Helper()
		var recs []queues.Record
		if err := json.Unmarshal([]byte(must(append([]string{"list", "--json"}, args...)...)), &recs); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range recs {
			ids = append(ids, r.ID.String())
		}
		return ids
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{nil, []string{c.ID.String(), b.ID.String(), a.ID.String()}},
		{[]string{"--tag", "red"}, []string{b.ID.String(), a.ID.String()}},
		{[]string{"--tag", "red", "--queue", "mail"}, []string{b.ID.String()}},
		{[]string{"--tag", "red", "--status", "pending", "--task", "demo.echo", "--limit", "1"}, []string{b.ID.String()}},
		{[]string{"--tag", "green"}, nil},
	} {
		if got := list(tc.args...); strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("list %v = %v, want %v", tc.args, got, tc.want)
		}
	}
	if out := must("list", "--json", "--tag", "green"); out != "[]\n" {
		t.Errorf("empty JSON list = %q", out)
	}
	table := must("list", "--tag", "blue")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ID ") || !strings.Contains(lines[0], "TAGS") ||
		!strings.Contains(lines[1], a.ID.String()) || !strings.Contains(lines[1], "blue,red") || !strings.Contains(lines[1], "pending") {
		t.Fatalf("table:\n%s", table)
	}
	if got := must("get", a.ID.String()); !strings.Contains(got, "blue,red") {
		t.Errorf("get does not show the tags:\n%s", got)
	}
	for _, bad := range [][]string{{"--status", "bogus"}, {"--limit", "0"}, {"--tag", "a b"}} {
		if code, _, _ := run(t, opts, append(append([]string{"list"}, bad...), "--backend", db)...); code == 0 {
			t.Errorf("list %v succeeded", bad)
		}
	}
}
