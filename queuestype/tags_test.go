package queuestype_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/queuesgo/queues/queuestype"
)

func TestNormalizeTags(t *testing.T) {
	if got := queuestype.NormalizeTags(nil); got != nil {
		t.Fatalf("NormalizeTags(nil) = %q, want nil", got)
	}
	in := []string{"b", "a", "b", "c", "a"}
	got := queuestype.NormalizeTags(in)
	if !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("NormalizeTags = %q", got)
	}
	if in[0] != "b" {
		t.Fatal("NormalizeTags modified its argument")
	}
}

func TestCheckTags(t *testing.T) {
	d := queuestype.DefaultLimits()
	if d.MaxTags != 16 || d.TagBytes != 64 {
		t.Fatalf("default tag limits = %d, %d; want 16, 64", d.MaxTags, d.TagBytes)
	}
	ok := make([]string, 16)
	for i := range ok {
		ok[i] = strings.Repeat(string(rune('a'+i)), 64)
	}
	if err := queuestype.CheckTags("tags", ok, d.MaxTags, d.TagBytes); err != nil {
		t.Fatalf("16 tags of 64 bytes: %v", err)
	}
	rows := []struct {
		tags  []string
		field string
	}{
		{append(ok, "q"), "tags"},
		{[]string{strings.Repeat("t", 65)}, "tags[0]"},
		{[]string{"ok", ""}, "tags[1]"},
		{[]string{"ok", "a/b"}, "tags[1]"},
	}
	for _, r := range rows {
		err := queuestype.CheckTags("tags", r.tags, d.MaxTags, d.TagBytes)
		var le *queuestype.LimitError
		if !errors.As(err, &le) || le.Field != r.field || !errors.Is(err, queuestype.ErrLimit) {
			t.Fatalf("CheckTags(%q) = %v, want a LimitError on %s", r.tags, err, r.field)
		}
	}
	if _, err := (queuestype.Limits{MaxTags: 17}).Resolve(""); !errors.Is(err, queuestype.ErrConfig) {
		t.Fatalf("MaxTags 17 resolved: %v", err)
	}
}
