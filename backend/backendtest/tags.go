package backendtest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/driver"
)

// testTags covers record tags: stored, listed by tag, bounded, and
// dropped from the tag index with the records cleanup deletes.
func testTags(t *testing.T, f Factory) {
	runCases(t, f, []testCase{
		{"RoundTrip", tagsRoundTrip},
		{"ListByTag", tagsListByTag},
		{"Limits", tagsLimits},
		{"Cleanup", tagsCleanup},
	})
}

func tags(ts ...string) opt { return func(p *driver.EnqueueParams) { p.Tags = ts } }

// Tags come back sorted without duplicates, from Enqueue and GetTask
// alike; a record without tags has none.
func tagsRoundTrip(t *testing.T, b driver.Backend) {
	rec := enqueueOne(t, b, item("tags.rt", tags("zeta", "alpha:1", "zeta", "b.c_d-e")))
	want := []string{"alpha:1", "b.c_d-e", "zeta"}
	if !slices.Equal(rec.Tags, want) {
		t.Fatalf("enqueued tags = %q, want %q", rec.Tags, want)
	}
	if got := get(t, b, rec.ID).Tags; !slices.Equal(got, want) {
		t.Fatalf("stored tags = %q, want %q", got, want)
	}
	plain := enqueueOne(t, b, item("tags.rt"))
	if got := get(t, b, plain.ID).Tags; len(got) != 0 {
		t.Fatalf("tags of a record enqueued without = %q, want none", got)
	}
}

func tagsListByTag(t *testing.T, b driver.Backend) {
	in := require[driver.Inspector](t, b)
	var red, redQ2 []uuid.UUID
	for i := range 5 {
		red = append(red, enqueueOne(t, b, item("tags.list", tags("red", fmt.Sprintf("n%d", i)))).ID)
	}
	for range 2 {
		redQ2 = append(redQ2, enqueueOne(t, b, item("tags.list", inQueue("q2"), tags("red", "blue"))).ID)
	}
	blue := enqueueOne(t, b, item("tags.other", tags("blue"))).ID
	enqueueOne(t, b, item("tags.list"))
	run := claimByID(t, b, red[0], workerA)

	check := func(what string, f queues.TaskFilter, want ...uuid.UUID) {
		t.Helper()
		f.Limit = 2
		got, _ := listAll(t, in, f)
		wantIDSet(t, what, idsOf(got), want...)
		wantNewestCreatedFirst(t, what, got)
		for _, r := range got {
			if !slices.Contains(r.Tags, f.Tag) {
				t.Fatalf("%s: listed %s with tags %q", what, r.ID, r.Tags)
			}
		}
	}
	check("tag red", queues.TaskFilter{Tag: "red"}, append(append([]uuid.UUID{}, red...), redQ2...)...)
	check("tag blue", queues.TaskFilter{Tag: "blue"}, append(append([]uuid.UUID{}, redQ2...), blue)...)
	check("tag n3", queues.TaskFilter{Tag: "n3"}, red[3])
	check("tag red in q2", queues.TaskFilter{Tag: "red", Queue: "q2"}, redQ2...)
	check("tag red running", queues.TaskFilter{Tag: "red", Status: queues.StatusRunning}, run.ID)
	check("tag red pending in default", queues.TaskFilter{Tag: "red", Status: queues.StatusPending, Queue: queues.DefaultQueue}, red[1:]...)
	check("tag blue of tags.other", queues.TaskFilter{Tag: "blue", TaskName: "tags.other"}, blue)
	check("unknown tag", queues.TaskFilter{Tag: "green"})
}

// Over-limit tags fail the whole call with a LimitError and write nothing.
func tagsLimits(t *testing.T, b driver.Backend) {
	many := make([]string, 17)
	for i := range many {
		many[i] = fmt.Sprintf("t%02d", i)
	}
	rows := []struct {
		name     string
		tags     []string
		field    string
		tooLarge bool
	}{
		{"17 tags", many, "items[1].tags", true},
		{"tag of 65 bytes", []string{strings.Repeat("t", 65)}, "items[1].tags[0]", true},
		{"empty tag", []string{"a", ""}, "items[1].tags[0]", false},
		{"tag with a space", []string{"a b"}, "items[1].tags[0]", false},
		{"tag with NUL", []string{"a\x00"}, "items[1].tags[0]", false},
	}
	for _, r := range rows {
		_, err := b.Enqueue(t.Context(), []driver.EnqueueParams{item("tags.ok", tags("fine")), item("tags.bad", tags(r.tags...))})
		wantLimitError(t, r.name, err, r.field, r.tooLarge)
	}
	// 16 distinct tags of 64 bytes fit, duplicates not counted.
	full := make([]string, 0, 17)
	for i := range 16 {
		full = append(full, fmt.Sprintf("%02d%s", i, strings.Repeat("x", 62)))
	}
	full = append(full, full[0])
	rec := enqueueOne(t, b, item("tags.full", tags(full...)))
	wantInt(t, "stored tags", len(get(t, b, rec.ID).Tags), 16)
	wantInt(t, "records after the refused calls", stats(t, b, "").Total, 1)
	in := require[driver.Inspector](t, b)
	got, _ := listAll(t, in, queues.TaskFilter{Tag: "fine"})
	wantIDSet(t, "records tagged by refused calls", idsOf(got))
}

// CleanupTerminal drops deleted records from the tag index: a later
// record with the same tag is the only one listed.
func tagsCleanup(t *testing.T, b driver.Backend) {
	in := require[driver.Inspector](t, b)
	old := completed(t, b, item("tags.clean", tags("gone", "kept")))
	n, err := b.CleanupTerminal(t.Context(), driver.CleanupAll(time.Now().Add(time.Hour), 100))
	wantNoErr(t, "CleanupTerminal", err)
	wantInt(t, "deleted", n, 1)
	wantGone(t, b, old.ID)
	fresh := enqueueOne(t, b, item("tags.clean", tags("kept")))
	got, _ := listAll(t, in, queues.TaskFilter{Tag: "gone"})
	wantIDSet(t, "tag gone after cleanup", idsOf(got))
	got, _ = listAll(t, in, queues.TaskFilter{Tag: "kept"})
	wantIDSet(t, "tag kept after cleanup", idsOf(got), fresh.ID)
}
