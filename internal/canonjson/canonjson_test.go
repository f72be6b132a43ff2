package canonjson

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
)

func mustMarshal(t *testing.T, v any) string {
	t.Helper()
	b, err := Marshal(v)
	if err != nil {
		t.Fatalf("Marshal(%#v): %v", v, err)
	}
	return string(b)
}

func TestKeySortingNested(t *testing.T) {
	v := map[string]any{
		"zeta":  1,
		"alpha": map[string]any{"y": []any{map[string]any{"d": 1, "c": 2}}, "x": true},
		"mid":   nil,
	}
	got := mustMarshal(t, v)
	want := `{"alpha":{"x":true,"y":[{"c":2,"d":1}]},"mid":null,"zeta":1}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestByteOrder(t *testing.T) {
	got := mustMarshal(t, map[string]int{"b": 1, "a": 2, "B": 3, "A": 4, "_": 5, "é": 6, "aa": 7, "1": 8})
	want := `{"1":8,"A":4,"B":3,"_":5,"a":2,"aa":7,"b":1,"é":6}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestStructFieldsSorted(t *testing.T) {
	type args struct {
		Zed   string `json:"zed"`
		Alpha int    `json:"alpha"`
		Skip  string `json:"-"`
	}
	got := mustMarshal(t, args{Zed: "z", Alpha: 1, Skip: "x"})
	if want := `{"alpha":1,"zed":"z"}`; got != want {
		t.Fatalf("got %s want %s", got, want)
	}
}

func TestNoHTMLEscaping(t *testing.T) {
	got := mustMarshal(t, map[string]string{"h": "<a href=\"x\">&</a>"})
	want := `{"h":"<a href=\"x\">&</a>"}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestNonASCIIRaw(t *testing.T) {
	got := mustMarshal(t, map[string]string{"s": "Crème brûlée – 日本語 🎉 \u2028\u2029"})
	want := "{\"s\":\"Crème brûlée – 日本語 🎉 \u2028\u2029\"}"
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	// Raw input that escapes non-ASCII canonicalizes to the raw form too.
	got2 := mustMarshal(t, json.RawMessage(`{"s":"Cr\u00e8me brûlée \u2013 \u65e5\u672c\u8a9e \ud83c\udf89 \u2028\u2029"}`))
	if got2 != want {
		t.Fatalf("escaped input: got %q want %q", got2, want)
	}
}

func TestControlCharacters(t *testing.T) {
	got := mustMarshal(t, "a\"b\\c\b\f\n\r\t\x00\x1f\x7f")
	want := `"a\"b\\c\b\f\n\r\t\u0000\u001f` + "\x7f" + `"`
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

func TestInvalidUTF8Replaced(t *testing.T) {
	got := mustMarshal(t, "a\xffb")
	if want := "\"a\ufffdb\""; got != want {
		t.Fatalf("got %q want %q", got, want)
	}
}

func TestNumbersPreserved(t *testing.T) {
	cases := []struct {
		in   any
		want string
	}{
		{float64(1), `1`},
		{1.5, `1.5`},
		{int64(math.MaxInt64), `9223372036854775807`},
		{uint64(math.MaxUint64), `18446744073709551615`},
		{1e21, `1e+21`},
		{json.Number("1.0"), `1.0`},
		{json.RawMessage(`1.0`), `1.0`},
		{json.RawMessage(`{"b":1.50,"a":-0,"c":1E5}`), `{"a":-0,"b":1.50,"c":1E5}`},
		{json.RawMessage(`123456789012345678901234567890`), `123456789012345678901234567890`},
		{map[string]any{"n": json.Number("2.000")}, `{"n":2.000}`},
	}
	for _, c := range cases {
		if got := mustMarshal(t, c.in); got != c.want {
			t.Errorf("Marshal(%#v) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestWhitespaceRemoved(t *testing.T) {
	got := mustMarshal(t, json.RawMessage(" {\n \"b\" : [ 1 , 2 ] ,\t\"a\" : { } , \"c\": [ ] } "))
	if want := `{"a":{},"b":[1,2],"c":[]}`; got != want {
		t.Fatalf("got %s want %s", got, want)
	}
}

func TestScalarsAndNil(t *testing.T) {
	for in, want := range map[any]string{nil: "null", true: "true", false: "false", "x": `"x"`} {
		if got := mustMarshal(t, in); got != want {
			t.Errorf("Marshal(%#v) = %s want %s", in, got, want)
		}
	}
}

func TestUnsupported(t *testing.T) {
	cases := map[string]any{
		"NaN":         math.NaN(),
		"+Inf":        math.Inf(1),
		"-Inf":        map[string]any{"x": math.Inf(-1)},
		"chan":        make(chan int),
		"func":        func() {},
		"nested chan": map[string]any{"a": []any{make(chan int)}},
		"complex":     complex(1, 2),
		"bad raw":     json.RawMessage(`{"a":`),
		"marshaler":   failingMarshaler{},
	}
	for name, v := range cases {
		_, err := Marshal(v)
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: err = %v, want ErrUnsupported", name, err)
		}
	}
}

type failingMarshaler struct{}

func (failingMarshaler) MarshalJSON() ([]byte, error) { return nil, errors.New("boom") }

func TestEqualValuesSameBytes(t *testing.T) {
	type inner struct {
		B int `json:"b"`
		A int `json:"a"`
	}
	a := map[string]any{"x": 1, "y": inner{B: 2, A: 1}, "z": map[string]any{"q": "1", "p": []int{3}}}
	b := map[string]any{}
	b["z"] = map[string]any{"p": []int{3}, "q": "1"}
	b["y"] = map[string]int{"a": 1, "b": 2}
	b["x"] = 1.0
	ca, cb := mustMarshal(t, a), mustMarshal(t, b)
	if ca != cb {
		t.Fatalf("different canonical bytes:\n%s\n%s", ca, cb)
	}
	raw := mustMarshal(t, json.RawMessage(`{"z":{"q":"1","p":[3]},"y":{"b":2,"a":1},"x":1}`))
	if raw != ca {
		t.Fatalf("raw input differs:\n%s\n%s", raw, ca)
	}
	// Repeated marshals are deterministic despite map iteration order.
	for range 50 {
		if got := mustMarshal(t, a); got != ca {
			t.Fatalf("non-deterministic: %s vs %s", got, ca)
		}
	}
}

func TestSHA256Hex(t *testing.T) {
	if got, want := SHA256Hex([]byte("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; got != want {
		t.Fatalf("got %s want %s", got, want)
	}
	if got, want := SHA256Hex(nil), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"; got != want {
		t.Fatalf("got %s want %s", got, want)
	}
}

func TestIdentityShape(t *testing.T) {
	got := mustMarshal(t, map[string]any{"version": "v1", "task": "email.send", "arguments": map[string]any{"to": "a@b.c", "n": 1}})
	if want := `{"arguments":{"n":1,"to":"a@b.c"},"task":"email.send","version":"v1"}`; got != want {
		t.Fatalf("got %s want %s", got, want)
	}
}
