package driver_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

func TestCheckScheduleName(t *testing.T) {
	for _, ok := range []string{"report", "report:nightly", "ünï:工人", strings.Repeat("x", driver.MaxScheduleName)} {
		if err := driver.CheckScheduleName(t.Context(), ok); err != nil {
			t.Errorf("CheckScheduleName(%.20q) = %v; want nil", ok, err)
		}
	}
	for _, c := range []struct {
		name  string
		large bool
	}{
		{"", false},
		{strings.Repeat("x", driver.MaxScheduleName+1), true},
		{"bad\xff", false},
		{"nul\x00", false},
		{"tab\tname", false},
	} {
		err := driver.CheckScheduleName(t.Context(), c.name)
		var le *queuestype.LimitError
		if !errors.As(err, &le) || le.Field != "schedule" || le.TooLarge != c.large {
			t.Errorf("CheckScheduleName(%.20q) = %v; want a *LimitError on schedule (TooLarge %v)", c.name, err, c.large)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := driver.CheckScheduleName(ctx, "report"); !errors.Is(err, context.Canceled) {
		t.Errorf("ended context: %v; want context.Canceled", err)
	}
}
