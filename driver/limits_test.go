package driver_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

func TestFitSettleTexts(t *testing.T) {
	ts := []driver.Transition{{Error: "fine"}, {Error: "nul\x00"}, {Error: strings.Repeat("e", 20<<10)}}
	got := driver.FitSettleTexts(ts)
	if ts[1].Error != "nul\x00" || len(ts[2].Error) != 20<<10 {
		t.Fatal("the caller's transitions were modified")
	}
	if got[0].Error != "fine" || got[1].Error != "nul\uFFFD" || len(got[2].Error) > 16<<10 || !strings.HasSuffix(got[2].Error, "[truncated]") {
		t.Fatalf("fitted texts %q %q %d bytes", got[0].Error, got[1].Error, len(got[2].Error))
	}
	clean := []driver.Transition{{Error: "a"}, {}}
	if out := driver.FitSettleTexts(clean); &out[0] != &clean[0] {
		t.Fatal("texts that fit were copied")
	}
}

func TestCheckTransition(t *testing.T) {
	id := uuid.New()
	if err := driver.CheckTransition(&driver.Transition{ID: id, To: queuestype.StatusCompleted, Result: json.RawMessage(`{"a":1}`)}); err != nil {
		t.Fatal(err)
	}
	err := driver.CheckTransition(&driver.Transition{ID: id, To: queuestype.StatusCompleted, Result: json.RawMessage(`"\u0000"`)})
	var le *queuestype.LimitError
	if !errors.As(err, &le) || le.Field != "result" || !errors.Is(err, queuestype.ErrConfig) {
		t.Fatalf("NUL result: %v", err)
	}
	if err := driver.CheckTransition(&driver.Transition{ID: id, To: queuestype.StatusRunning}); !errors.Is(err, queuestype.ErrConfig) || errors.As(err, &le) {
		t.Fatalf("bad status: %v", err)
	}
}
