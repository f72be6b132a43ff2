package postgres

import (
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestDecodeRawMatchesScan checks that the raw binary decoder is used for
// query rows and agrees with pgx's scanner.
func TestDecodeRawMatchesScan(t *testing.T) {
	pool := internalPool(t)
	ctx := t.Context()
	sql := `SELECT '0195f3e4-7c1a-7d2b-9c3d-1234567890ab'::uuid, 'task', '{"a":1}'::jsonb, 'q', 'local', NULL::text, 'ref', 'w',
		'running', -5, 3, 2, NULL::timestamptz, '2025-06-07 08:09:10.654321+00'::timestamptz, '2024-01-02 03:04:05.123456+00'::timestamptz, '2025-06-07 08:09:10.654321+00'::timestamptz, '2025-06-07 08:09:10.654321+00'::timestamptz, NULL::timestamptz,
		'2025-06-07 08:09:10.654321+00'::timestamptz, NULL::jsonb, 'boom', 'k', '{"m":{"n":[1,"x",true,null]}}'::jsonb,
		'{"timeout":1.5,"retry_backoff":{"initial_delay":2,"multiplier":3},"requeue_on_shutdown":false,"unique_until":"forever"}'::jsonb, 4,
		'2025-06-07 08:19:10.5+00'::timestamptz, 7,
		'[{"attempt":1,"at":"2025-06-07T08:09:10.654321Z","error":"boom","trace":"stack","worker":"w"}]'::jsonb,
		ARRAY['a', 'b:c']::text[]`
	rows, err := pool.Query(ctx, sql)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if !rows.Next() {
		t.Fatal("no row")
	}
	raw, ok, err := decodeRaw(rows)
	if err != nil || !ok {
		t.Fatalf("decodeRaw ok=%v err=%v (formats %+v)", ok, err, rows.FieldDescriptions())
	}
	rows.Close()
	scanned, err := scanRecord(pool.QueryRow(ctx, sql))
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2025, 6, 7, 8, 19, 10, 5e8, time.UTC); !raw.DispatchUntil.Equal(want) || !scanned.DispatchUntil.Equal(want) {
		t.Fatalf("dispatch_until: raw %v, scanned %v; want %v", raw.DispatchUntil, scanned.DispatchUntil, want)
	}
	if raw.Interruptions != 4 || raw.Policy.Timeout != 1500*time.Millisecond || raw.Policy.RequeueOnShutdown == nil || !raw.Policy.Forever() {
		t.Fatalf("raw decode of policy and interruptions: %+v, %d", raw.Policy, raw.Interruptions)
	}
	if raw.SnoozeCount != 7 || len(raw.Errors) != 1 || raw.Errors[0].Trace != "stack" || raw.Errors[0].WorkerID != "w" {
		t.Fatalf("raw decode of snooze_count and errors: %d, %+v", raw.SnoozeCount, raw.Errors)
	}
	if !slices.Equal(raw.Tags, []string{"a", "b:c"}) {
		t.Fatalf("raw decode of tags: %q", raw.Tags)
	}
	a, _ := raw.MarshalJSON()
	b, _ := scanned.MarshalJSON()
	if string(a) != string(b) {
		t.Fatalf("raw decode\n%s\ndiffers from scan\n%s", a, b)
	}
	_ = pgx.BinaryFormatCode
}

func TestDecodeTextArray(t *testing.T) {
	pool := internalPool(t)
	for _, lit := range []string{`'{}'::text[]`, `ARRAY['x']::text[]`, `ARRAY['', 'é', 'a,b']::text[]`} {
		rows, err := pool.Query(t.Context(), `SELECT `+lit+`, `+lit)
		if err != nil {
			t.Fatal(err)
		}
		if !rows.Next() {
			t.Fatal("no row")
		}
		got, ok := decodeTextArray(rows.RawValues()[0])
		var want []string
		if err := rows.Scan(&want, nil); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		if len(want) == 0 {
			want = nil
		}
		if !ok || !slices.Equal(got, want) {
			t.Fatalf("%s: decodeTextArray = %q, %v; want %q", lit, got, ok, want)
		}
	}
	if _, ok := decodeTextArray([]byte{0, 0}); ok {
		t.Fatal("a truncated array decoded")
	}
}
