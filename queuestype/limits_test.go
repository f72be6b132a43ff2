package queuestype_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/queuesgo/queues/queuestype"
)

func TestCheckJSON(t *testing.T) {
	ok := []string{
		``, `{}`, `null`, `"text"`, `{"s":"\\u0000"}`, `{"s":"\\\\"}`, `{"s":"\ud83d\ude00"}`,
		`{"s":"\u0041\u00e9"}`, `{"s":"é😀"}`, `["\"", "\\", "\/"]`, `{"s":"\\\ud83d\ude00"}`,
	}
	for _, s := range ok {
		if err := queuestype.CheckJSON("args", []byte(s), 1<<10); err != nil {
			t.Errorf("CheckJSON(%s) = %v, want nil", s, err)
		}
	}
	bad := map[string]string{
		`{"s":"\u0000"}`:        `\u0000 escape at offset 6`,
		`{"s":"a\\\u0000"}`:     `\u0000 escape at offset 9`,
		"{\"s\":\"a\x00\"}":     "NUL byte at offset 7",
		"{\"s\":1}\x00":         "NUL byte at offset 7",
		"{\"s\":\"\xff\"}":      "is not valid UTF-8",
		`{"s":"\ud83d"}`:        "unpaired surrogate escape at offset 6",
		`{"s":"\ude00"}`:        "unpaired surrogate escape at offset 6",
		`{"s":"\ud83d\u0041"}`:  "unpaired surrogate escape at offset 6",
		`{"s":"\ud83dx"}`:       "unpaired surrogate escape at offset 6",
		`{"s":`:                 "is not valid JSON",
		`{"s":"\u00"}`:          "is not valid JSON",
		`{"s":"\uD800\uDC00"} `: "",
	}
	for s, problem := range bad {
		err := queuestype.CheckJSON("args", []byte(s), 1<<10)
		if problem == "" {
			if err != nil {
				t.Errorf("CheckJSON(%q) = %v, want nil", s, err)
			}
			continue
		}
		var le *queuestype.LimitError
		if !errors.As(err, &le) || le.Field != "args" || le.TooLarge || le.Problem != problem {
			t.Errorf("CheckJSON(%q) = %#v, want problem %q", s, err, problem)
		}
	}
	err := queuestype.CheckJSON("result", []byte(`"12345"`), 6)
	var le *queuestype.LimitError
	if !errors.As(err, &le) || !le.TooLarge || le.Error() != "queues: result: 7 bytes is too large (limit 6 bytes)" {
		t.Fatalf("over the size: %v", err)
	}
}

// Whatever CheckJSON accepts, PostgreSQL's jsonb rules aside, decodes
// without a NUL; whatever encoding/json produces from a string with a NUL
// is refused.
func FuzzCheckJSON(f *testing.F) {
	for _, s := range []string{`{"s":"\u0000"}`, `{"s":"\\u0000"}`, `"\ud83d\ude00"`, `"\ud83d"`, "\"\x00\"", `[1,"a"]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if queuestype.CheckJSON("args", []byte(s), 1<<20) != nil {
			return
		}
		if len(s) == 0 {
			return
		}
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			t.Fatalf("accepted %q, which does not decode: %v", s, err)
		}
		if strings.ContainsRune(s, 0) || containsNUL(v) {
			t.Fatalf("accepted %q, which holds a NUL", s)
		}
		if !utf8.ValidString(s) {
			t.Fatalf("accepted invalid UTF-8 %q", s)
		}
	})
}

func containsNUL(v any) bool {
	switch v := v.(type) {
	case string:
		return strings.ContainsRune(v, 0)
	case []any:
		for _, e := range v {
			if containsNUL(e) {
				return true
			}
		}
	case map[string]any:
		for k, e := range v {
			if strings.ContainsRune(k, 0) || containsNUL(e) {
				return true
			}
		}
	}
	return false
}

func TestFitErrorText(t *testing.T) {
	if got := queuestype.FitErrorText("short", 100); got != "short" {
		t.Fatalf("short text changed: %q", got)
	}
	if got := queuestype.FitErrorText("a\x00b\xff", 100); got != "a\uFFFDb\uFFFD" {
		t.Fatalf("NUL and invalid UTF-8: %q", got)
	}
	long := strings.Repeat("é", 100) // 200 bytes
	for limit := 0; limit <= 201; limit++ {
		got := queuestype.FitErrorText(long, limit)
		if len(got) > limit || !utf8.ValidString(got) {
			t.Fatalf("limit %d: %d bytes, valid %v", limit, len(got), utf8.ValidString(got))
		}
		if limit < 200 && limit > 15 && (!strings.HasSuffix(got, " …[truncated]") || !strings.HasPrefix(long, strings.TrimSuffix(got, " …[truncated]"))) {
			t.Fatalf("limit %d: %q", limit, got)
		}
	}
}

func TestLimitsResolve(t *testing.T) {
	l, err := queuestype.Limits{}.Resolve("Limits.")
	if err != nil || l != queuestype.DefaultLimits() {
		t.Fatalf("zero limits resolve to %+v, %v", l, err)
	}
	l, err = queuestype.Limits{ArgsBytes: 10, MaxTimeout: time.Minute}.Resolve("Limits.")
	if err != nil || l.ArgsBytes != 10 || l.MaxTimeout != time.Minute || l.ResultBytes != 1<<20 {
		t.Fatalf("tightened limits resolve to %+v, %v", l, err)
	}
	for _, bad := range []queuestype.Limits{{ArgsBytes: 1<<20 + 1}, {KeyBytes: -1}, {MaxRetries: 1001}, {MaxExpiryAfterDue: 367 * 24 * time.Hour}} {
		_, err := bad.Resolve("Limits.")
		var ce *queuestype.ConfigError
		if !errors.As(err, &ce) || !strings.HasPrefix(ce.Field, "Limits.") {
			t.Errorf("%+v: %v, want a ConfigError", bad, err)
		}
	}
}

func TestNameChecks(t *testing.T) {
	for _, q := range []string{"default", "a", "emails.high", "tenant:42", "x_y-z", strings.Repeat("q", 128)} {
		if err := queuestype.CheckCharsetName("queue", q, 128); err != nil {
			t.Errorf("queue %q: %v", q, err)
		}
	}
	for _, q := range []string{"", " ", "a b", "é", "a/b", "a\x00", strings.Repeat("q", 129)} {
		if err := queuestype.CheckCharsetName("queue", q, 128); !errors.Is(err, queuestype.ErrLimit) {
			t.Errorf("queue %q accepted", q)
		}
	}
	for _, s := range []string{"demo.echo", "émail 📧", "with space"} {
		if err := queuestype.CheckText("task", s, 255); err != nil {
			t.Errorf("task %q: %v", s, err)
		}
	}
	for _, s := range []string{"", "a\tb", "a\u0085b", "\xff"} {
		if err := queuestype.CheckText("task", s, 255); !errors.Is(err, queuestype.ErrLimit) {
			t.Errorf("task %q accepted", s)
		}
	}
}
