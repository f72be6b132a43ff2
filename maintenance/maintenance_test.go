package maintenance_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/maintenance"
	"github.com/queuesgo/queues/queuestype"
)

var sample = maintenance.Report{Outcome: maintenance.OutcomeFailed, Acquired: true, Duration: 12345 * time.Microsecond,
	Phases: []maintenance.PhaseReport{
		{Phase: maintenance.External, Status: maintenance.StatusSkipped},
		{Phase: maintenance.Stale, Status: maintenance.StatusFailed, Duration: 2 * time.Millisecond, Error: "maintenance_phase_failed:connect"},
		{Phase: maintenance.Terminal, Status: maintenance.StatusCompleted, Changed: 123456, Duration: 10*time.Millisecond + 250*time.Microsecond},
		{Phase: maintenance.Events, Status: maintenance.StatusSkipped},
	}}

// JSON: compact, fixed key order, one decimal, error null when none.
func TestReportJSON(t *testing.T) {
	got, err := sample.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"outcome":"failed","acquired":true,"duration_ms":12.3,"phases":[` +
		`{"phase":"external","status":"skipped","changed":0,"duration_ms":0.0,"error":null},` +
		`{"phase":"stale","status":"failed","changed":0,"duration_ms":2.0,"error":"maintenance_phase_failed:connect"},` +
		`{"phase":"terminal","status":"completed","changed":123456,"duration_ms":10.2,"error":null},` +
		`{"phase":"events","status":"skipped","changed":0,"duration_ms":0.0,"error":null}]}`
	if string(got) != want {
		t.Fatalf("JSON\n got %s\nwant %s", got, want)
	}
}

// Text: three lines, then the table with its column widths.
func TestReportText(t *testing.T) {
	var b bytes.Buffer
	if err := sample.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := "outcome: failed\nacquired: true\nduration_ms: 12.3\n" +
		"Phase     Status        Changed  Duration(ms)  Error\n" +
		"external  skipped             0           0.0  -\n" +
		"stale     failed              0           2.0  maintenance_phase_failed:connect\n" +
		"terminal  completed      123456          10.2  -\n" +
		"events    skipped             0           0.0  -\n"
	if b.String() != want {
		t.Fatalf("text\n got %q\nwant %q", b.String(), want)
	}
}

func TestErrorKind(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("x: %w", queuestype.ErrConfig), maintenance.KindConfig},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), maintenance.KindTimeout},
		{fmt.Errorf("x: %w", driver.ErrUnavailable), maintenance.KindConnect},
		{fmt.Errorf("x: %w", driver.ErrInvalidData), maintenance.KindStorage},
		{errors.New("something else"), maintenance.KindInternal},
	} {
		if got := maintenance.ErrorKind(nil, c.err); got != c.want {
			t.Errorf("ErrorKind(%v) = %s, want %s", c.err, got, c.want)
		}
	}
	for _, p := range maintenance.Phases {
		if got, err := maintenance.ParsePhase(string(p)); err != nil || got != p {
			t.Errorf("ParsePhase(%s) = %s, %v", p, got, err)
		}
	}
	if _, err := maintenance.ParsePhase("vacuum"); err == nil {
		t.Error("ParsePhase(vacuum) accepted")
	}
}
