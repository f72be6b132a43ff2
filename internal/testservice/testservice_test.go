package testservice

import (
	"errors"
	"testing"
)

// Skips are counted per service and summarised in one line each.
func TestSummaryCountsSkips(t *testing.T) {
	t.Setenv(EnvRequire, "")
	for range 3 {
		t.Run("needs-server", func(t *testing.T) {
			Unavailable(t, "Fake at fake://127.0.0.1:1", "set QUEUES_TEST_FAKE_URL", errors.New("refused"))
			t.Error("Unavailable returned instead of skipping")
		})
	}
	want := "SKIP: Fake at fake://127.0.0.1:1 unreachable: 3 tests skipped (set QUEUES_TEST_FAKE_URL, or QUEUES_REQUIRE_SERVICES=1 to fail)"
	if got := Summary(); len(got) != 1 || got[0] != want {
		t.Fatalf("Summary() = %q, want [%q]", got, want)
	}
}

func TestRedact(t *testing.T) {
	if got := Redact("postgres://u:secret@h:5432/db"); got != "postgres://u:xxxxx@h:5432/db" {
		t.Fatalf("Redact = %q", got)
	}
}
