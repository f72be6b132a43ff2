package queueshttp_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
)

// GET /api/tasks?tag= lists the records carrying the tag, combined with
// the other filters and the cursor; list items show the tags; a tag no
// record can carry is refused.
func TestListTasksByTag(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	a := f.enqueue("test.echo", echoArgs{"a"}, queues.EnqueueOptions{Tags: []string{"red", "blue"}})
	b := f.enqueue("test.echo", echoArgs{"b"}, queues.EnqueueOptions{Tags: []string{"red"}, Queue: "mail"})
	c := f.enqueue("test.echo", echoArgs{"c"}, queues.EnqueueOptions{Tags: []string{"red"}})
	f.enqueue("test.echo", echoArgs{"d"}, queues.EnqueueOptions{})
	ids := func(query string) (string, *string) {
		t.Helper()
		r := f.do("GET", "/q/api/tasks"+query, "")
		if r.status != 200 {
			t.Fatalf("list %s: %d %s", query, r.status, r.raw)
		}
		var p struct {
			Items []struct {
				ID   uuid.UUID `json:"id"`
				Tags []string  `json:"tags"`
			} `json:"items"`
			NextCursor *string `json:"next_cursor"`
		}
		if err := json.Unmarshal(r.raw, &p); err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, it := range p.Items {
			if !strings.Contains(query, "tag=") || len(it.Tags) == 0 {
				t.Fatalf("list %s: item %s without tags", query, it.ID)
			}
			s = append(s, it.ID.String())
		}
		return strings.Join(s, ","), p.NextCursor
	}
	join := func(xs ...uuid.UUID) string {
		var s []string
		for _, x := range xs {
			s = append(s, x.String())
		}
		return strings.Join(s, ",")
	}
	for _, c := range []struct{ query, want string }{
		{"?tag=red", join(c, b, a)},
		{"?tag=blue", join(a)},
		{"?tag=red&queue=mail", join(b)},
		{"?tag=red&queue=default&status=pending", join(c, a)},
		{"?tag=green", ""},
	} {
		if got, _ := ids(c.query); got != c.want {
			t.Errorf("list%s = %s, want %s", c.query, got, c.want)
		}
	}
	first, next := ids("?tag=red&limit=2")
	if first != join(c, b) || next == nil {
		t.Fatalf("first page by tag = %s (next %v)", first, next)
	}
	if rest, next := ids("?tag=red&limit=2&cursor=" + *next); rest != join(a) || next != nil {
		t.Fatalf("second page by tag = %s (next %v)", rest, next)
	}
	for _, q := range []string{"?tag=a%20b", "?tag=" + strings.Repeat("t", 65), "?tag=x/y"} {
		f.expectError("GET", "/q/api/tasks"+q, "", 400, "invalid_query")
	}
}
