// Package canonjson produces the canonical JSON used for task identity keys.
//
// A value is encoded with encoding/json (HTML escaping off), decoded again
// with UseNumber, and re-encoded with:
//
//   - object keys sorted by byte order (so "B" sorts before "a");
//   - no insignificant whitespace (separators "," and ":");
//   - UTF-8 emitted as-is: no \u escaping of non-ASCII, no HTML escaping of
//     <, > and &, and U+2028/U+2029 also kept raw (encoding/json escapes
//     them; canonical output does not, so the bytes depend only on the
//     decoded string values);
//   - in strings only '"', '\\' and control characters below U+0020 are
//     escaped, using \", \\, \b, \f, \n, \r, \t, or \u00XX (lowercase hex)
//     for the others;
//   - numbers written as their source JSON text (the encoding/json output for
//     Go numbers, e.g. float64(1) → 1; the literal text of a json.Number or
//     json.RawMessage, e.g. 1.0 stays 1.0).
//
// Invalid UTF-8 in strings is replaced by U+FFFD, as encoding/json does.
// Duplicate object keys in raw input keep the last value.
package canonjson

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"
)

// ErrUnsupported is wrapped by Marshal errors for values that cannot be
// encoded as JSON (NaN, ±Inf, channels, functions, complex numbers, failing
// Marshalers, invalid raw JSON).
var ErrUnsupported = errors.New("canonjson: value cannot be encoded as JSON")

// Marshal returns the canonical JSON encoding of v. Errors wrap
// ErrUnsupported.
func Marshal(v any) ([]byte, error) {
	var enc bytes.Buffer
	e := json.NewEncoder(&enc)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	d := json.NewDecoder(&enc)
	d.UseNumber()
	var tree any
	if err := d.Decode(&tree); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	out := make([]byte, 0, enc.Cap())
	return appendValue(out, tree)
}

// SHA256Hex returns the lowercase hexadecimal SHA-256 digest of b.
func SHA256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func appendValue(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		if x {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case json.Number:
		return append(dst, x...), nil
	case string:
		return appendString(dst, x), nil
	case []any:
		dst = append(dst, '[')
		for i, el := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendValue(dst, el); err != nil {
				return nil, err
			}
		}
		return append(dst, ']'), nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys) // Go string comparison is byte order
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, k)
			dst = append(dst, ':')
			var err error
			if dst, err = appendValue(dst, x[k]); err != nil {
				return nil, err
			}
		}
		return append(dst, '}'), nil
	}
	// Unreachable: a decoded JSON tree holds only the types above.
	return nil, fmt.Errorf("%w: unexpected decoded type %T", ErrUnsupported, v)
}

const hexDigits = "0123456789abcdef"

func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c >= 0x20:
				dst = append(dst, c)
			case c == '\b':
				dst = append(dst, '\\', 'b')
			case c == '\f':
				dst = append(dst, '\\', 'f')
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, "\ufffd"...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}
