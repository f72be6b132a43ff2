package canonjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"testing"
)

// FuzzCanonical checks the canonical form of any input: it never panics;
// input that is not JSON is refused with ErrUnsupported; the canonical form
// of JSON is valid JSON with the same decoded value, is its own canonical
// form, and is the same bytes for the same value written with its object
// keys in another order and other whitespace.
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{
		`{}`, `[]`, `null`, `true`, `0`, `-0.0e+00`, `1.0`, `123456789012345678901234567890`, `"x"`,
		`{"b":1,"a":[1,2,{"d":null,"c":"é"}]}`,
		`{"a":1,"a":2}`,
		` { "z" : "\u2028\u0000<>&\t" , "B" : [ ] } `,
		`"\ud800"`, "\"\xff\xfe\"", `{"\u00e9":1,"e\u0301":2}`,
		`[1e400, -1E-400, 0.000000000000000000001]`,
		`"\u2028<&>"`, `{"b":[1,{"d":null,"c":"x"}],"a":1.50,"A":"é"}`, "\"a\xffb\"", `{"\u0000":"\u001f"}`,
		`{"a":`, `[1,]`, `01`, `NaN`, "\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c1, err := Marshal(json.RawMessage(data))
		if !json.Valid(data) {
			if err == nil {
				t.Fatalf("invalid JSON %q canonicalized to %q", data, c1)
			}
			if !errors.Is(err, ErrUnsupported) {
				t.Fatalf("invalid JSON %q: error %v does not match ErrUnsupported", data, err)
			}
			return
		}
		if err != nil {
			if !errors.Is(err, ErrUnsupported) {
				t.Fatalf("%q: error %v does not match ErrUnsupported", data, err)
			}
			return // nesting deeper than encoding/json decodes
		}
		if !json.Valid(c1) {
			t.Fatalf("canonical form %q of %q is not valid JSON", c1, data)
		}
		c2, err := Marshal(json.RawMessage(c1))
		if err != nil || !bytes.Equal(c1, c2) {
			t.Fatalf("canonical form is not stable:\n in  %q\n c1  %q\n c2  %q (%v)", data, c1, c2, err)
		}
		want, got := decode(t, data), decode(t, c1)
		if !reflect.DeepEqual(want, got) {
			t.Fatalf("canonical form %q decodes to %#v, the input %q to %#v", c1, got, data, want)
		}
		reordered := appendReversed(nil, want)
		c3, err := Marshal(json.RawMessage(reordered))
		if err != nil || !bytes.Equal(c1, c3) {
			t.Fatalf("reordered keys change the canonical form:\n in         %q\n reordered  %q\n c1  %q\n c3  %q (%v)", data, reordered, c1, c3, err)
		}
	})
}

func decode(t *testing.T, data []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", data, err)
	}
	return v
}

// appendReversed writes v as JSON with each object's keys in reverse byte
// order and spaces around every separator.
func appendReversed(dst []byte, v any) []byte {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		slices.Reverse(keys)
		dst = append(dst, "{ "...)
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, " , "...)
			}
			kb, _ := json.Marshal(k)
			dst = append(dst, kb...)
			dst = append(dst, " : "...)
			dst = appendReversed(dst, x[k])
		}
		return append(dst, " }"...)
	case []any:
		dst = append(dst, "[ "...)
		for i, e := range x {
			if i > 0 {
				dst = append(dst, " , "...)
			}
			dst = appendReversed(dst, e)
		}
		return append(dst, " ]"...)
	case json.Number:
		return append(dst, x...)
	default:
		b, _ := json.Marshal(x)
		return append(dst, b...)
	}
}
