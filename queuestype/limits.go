package queuestype

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ErrLimit reports an input over one of the size or range limits. Every
// *LimitError matches it and ErrConfig.
var ErrLimit = errors.New("queues: input over a limit")

// LimitError is an input value over a limit: Field names the value
// ("args", "queue", "items[2].key", "result", ...), Limit states the limit
// ("1048576 bytes", "128 characters", "0..1000") and Problem what was
// wrong with the value. It matches ErrLimit and ErrConfig. TooLarge is true
// when the value was refused for its size (HTTP answers 413 then, 400 for
// the other limits).
type LimitError struct {
	Field    string
	Limit    string
	Problem  string
	TooLarge bool
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("queues: %s: %s (limit %s)", e.Field, e.Problem, e.Limit)
}

// Is makes errors.Is(err, ErrLimit) and errors.Is(err, ErrConfig) true.
func (e *LimitError) Is(target error) bool { return target == ErrLimit || target == ErrConfig }

// Limits bounds what a record may hold. DefaultLimits holds the defaults,
// which are also the hard maximums every store enforces before it writes
// anything; a service's configuration may only tighten them. In a Limits
// given to a configuration, a zero field means the default.
type Limits struct {
	// ArgsBytes bounds a record's JSON arguments (default 1 MiB).
	ArgsBytes int
	// ResultBytes bounds the JSON result of an attempt (default 1 MiB). A
	// result over it fails the attempt terminally.
	ResultBytes int
	// MetadataBytes bounds a record's metadata, encoded as JSON (default 64 KiB).
	MetadataBytes int
	// ErrorTextBytes bounds the stored error text (default 16 KiB). Longer
	// text is truncated at a UTF-8 boundary with a marker, never refused,
	// so that a failure can always be recorded.
	ErrorTextBytes int
	// EventPayloadBytes bounds the detail an attempt writes with its
	// heartbeats (progress detail metadata) and event payloads, encoded as
	// JSON (default 64 KiB).
	EventPayloadBytes int
	// QueueNameBytes bounds a queue name (default 128). Queue names are 1 or
	// more characters of A-Z a-z 0-9 . _ : - (see NamePattern).
	QueueNameBytes int
	// TaskNameBytes bounds a task name (default 255): valid UTF-8 without
	// control characters.
	TaskNameBytes int
	// KeyBytes bounds an identity key (default 1024): valid UTF-8 without
	// control characters.
	KeyBytes int
	// ExecutionNameBytes bounds execution backend and profile names
	// (default 64), which use the queue name characters.
	ExecutionNameBytes int
	// MaxRetries bounds a record's retry budget (default 1000).
	MaxRetries int
	// MaxTags bounds how many tags a record carries (default 16).
	MaxTags int
	// TagBytes bounds one tag (default 64); tags use the queue name
	// characters (see NamePattern).
	TagBytes int
	// MaxTimeout bounds a record's timeout (default 7 days).
	MaxTimeout time.Duration
	// MaxScheduleAhead bounds how far in the future a record may be due
	// (default 366 days).
	MaxScheduleAhead time.Duration
	// MaxExpiryAfterDue bounds how long after its due time a record may
	// expire (default 366 days).
	MaxExpiryAfterDue time.Duration
}

const (
	kib = 1 << 10
	mib = 1 << 20
	day = 24 * time.Hour
)

// DefaultLimits returns the default limits, which every store enforces as
// hard maximums.
func DefaultLimits() Limits {
	return Limits{
		ArgsBytes:          mib,
		ResultBytes:        mib,
		MetadataBytes:      64 * kib,
		ErrorTextBytes:     16 * kib,
		EventPayloadBytes:  64 * kib,
		QueueNameBytes:     128,
		TaskNameBytes:      255,
		KeyBytes:           1024,
		ExecutionNameBytes: 64,
		MaxRetries:         1000,
		MaxTags:            16,
		TagBytes:           64,
		MaxTimeout:         7 * day,
		MaxScheduleAhead:   366 * day,
		MaxExpiryAfterDue:  366 * day,
	}
}

// Resolve returns l with every zero field set to its default. A negative
// field, or one above its default (the hard maximum), returns a
// *ConfigError naming prefix+field.
func (l Limits) Resolve(prefix string) (Limits, error) {
	d := DefaultLimits()
	var err error
	ints := []struct {
		name     string
		v        *int
		def      int
		minValue int
	}{
		{"ArgsBytes", &l.ArgsBytes, d.ArgsBytes, 2},
		{"ResultBytes", &l.ResultBytes, d.ResultBytes, 4},
		{"MetadataBytes", &l.MetadataBytes, d.MetadataBytes, 2},
		// The truncation marker must fit.
		{"ErrorTextBytes", &l.ErrorTextBytes, d.ErrorTextBytes, len(truncationMarker) + 1},
		{"EventPayloadBytes", &l.EventPayloadBytes, d.EventPayloadBytes, 2},
		{"QueueNameBytes", &l.QueueNameBytes, d.QueueNameBytes, len(DefaultQueue)},
		{"TaskNameBytes", &l.TaskNameBytes, d.TaskNameBytes, 1},
		{"KeyBytes", &l.KeyBytes, d.KeyBytes, 1},
		{"ExecutionNameBytes", &l.ExecutionNameBytes, d.ExecutionNameBytes, len(ExecutionLocal)},
		{"MaxTags", &l.MaxTags, d.MaxTags, 1},
		{"TagBytes", &l.TagBytes, d.TagBytes, 1},
	}
	for _, f := range ints {
		switch {
		case err != nil:
		case *f.v < 0 || *f.v > f.def:
			err = &ConfigError{Field: prefix + f.name, Problem: fmt.Sprintf("%d is outside 0..%d (0 = the default, which is also the maximum)", *f.v, f.def)}
		case *f.v == 0:
			*f.v = f.def
		case *f.v < f.minValue:
			err = &ConfigError{Field: prefix + f.name, Problem: fmt.Sprintf("%d is below the smallest useful value %d", *f.v, f.minValue)}
		}
	}
	if err != nil {
		return l, err
	}
	if l.MaxRetries < 0 || l.MaxRetries > d.MaxRetries {
		return l, &ConfigError{Field: prefix + "MaxRetries", Problem: fmt.Sprintf("%d is outside 0..%d (0 = the default)", l.MaxRetries, d.MaxRetries)}
	} else if l.MaxRetries == 0 {
		l.MaxRetries = d.MaxRetries
	}
	durs := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"MaxTimeout", &l.MaxTimeout, d.MaxTimeout},
		{"MaxScheduleAhead", &l.MaxScheduleAhead, d.MaxScheduleAhead},
		{"MaxExpiryAfterDue", &l.MaxExpiryAfterDue, d.MaxExpiryAfterDue},
	}
	for _, f := range durs {
		switch {
		case *f.v < 0 || *f.v > f.def:
			return l, &ConfigError{Field: prefix + f.name, Problem: fmt.Sprintf("%s is outside 0..%s (0 = the default, which is also the maximum)", *f.v, f.def)}
		case *f.v == 0:
			*f.v = f.def
		}
	}
	return l, nil
}

// NamePattern describes the characters of queue, execution backend and
// execution profile names.
const NamePattern = "[A-Za-z0-9._:-]"

func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == ':' || c == '-'
}

func bytesLimit(n int) string { return fmt.Sprintf("%d bytes", n) }

// tooLarge returns the *LimitError of a value of n bytes over max.
func tooLarge(field string, n, max int) error {
	return &LimitError{Field: field, Limit: bytesLimit(max), Problem: fmt.Sprintf("%d bytes is too large", n), TooLarge: true}
}

// CheckCharsetName checks a queue, execution backend or profile name: 1..max
// bytes of NamePattern characters. An empty name is refused; callers that
// allow one (an unset profile) skip the check.
func CheckCharsetName(field, name string, max int) error {
	lim := fmt.Sprintf("1..%d characters of %s", max, NamePattern)
	if name == "" {
		return &LimitError{Field: field, Limit: lim, Problem: "must not be empty"}
	}
	if len(name) > max {
		return &LimitError{Field: field, Limit: lim, Problem: fmt.Sprintf("%d bytes is too long", len(name)), TooLarge: true}
	}
	for i := 0; i < len(name); i++ {
		if !isNameByte(name[i]) {
			return &LimitError{Field: field, Limit: lim, Problem: fmt.Sprintf("byte %d (%q) is not allowed", i, name[i])}
		}
	}
	return nil
}

// CheckTags checks a record's tags: at most max tags, each 1..tagBytes
// bytes of NamePattern characters. Field names are field[i].
func CheckTags(field string, tags []string, max, tagBytes int) error {
	if len(tags) > max {
		return &LimitError{Field: field, Limit: fmt.Sprintf("%d tags", max), Problem: fmt.Sprintf("%d tags is too many", len(tags)), TooLarge: true}
	}
	for i, t := range tags {
		if err := CheckCharsetName(fmt.Sprintf("%s[%d]", field, i), t, tagBytes); err != nil {
			return err
		}
	}
	return nil
}

// NormalizeTags returns tags sorted with duplicates removed, as every
// record stores them; nil for none.
func NormalizeTags(tags []string) []string {
	if len(tags) == 0 {
		return nil
	}
	out := append([]string(nil), tags...)
	sort.Strings(out)
	return slices.Compact(out)
}

// CheckText checks a task name or identity key: 1..max bytes of valid
// UTF-8 without control characters.
func CheckText(field, s string, max int) error {
	lim := fmt.Sprintf("1..%d bytes of UTF-8 without control characters", max)
	switch {
	case s == "":
		return &LimitError{Field: field, Limit: lim, Problem: "must not be empty"}
	case len(s) > max:
		return &LimitError{Field: field, Limit: lim, Problem: fmt.Sprintf("%d bytes is too long", len(s)), TooLarge: true}
	case !utf8.ValidString(s):
		return &LimitError{Field: field, Limit: lim, Problem: "is not valid UTF-8"}
	}
	for i, r := range s {
		if unicode.IsControl(r) {
			return &LimitError{Field: field, Limit: lim, Problem: fmt.Sprintf("control character %U at byte %d", r, i)}
		}
	}
	return nil
}

// CheckRange checks an integer against min..max.
func CheckRange(field string, v, min, max int) error {
	if v < min || v > max {
		return &LimitError{Field: field, Limit: fmt.Sprintf("%d..%d", min, max), Problem: fmt.Sprintf("%d is out of range", v)}
	}
	return nil
}

// CheckJSON checks a JSON document a record stores (arguments, a result,
// encoded metadata): at most max bytes, valid UTF-8, valid JSON, and no NUL
// character, neither raw nor escaped as \u0000, nor an unpaired UTF-16
// surrogate escape. Some stores (PostgreSQL jsonb) cannot hold those, so
// every store refuses them alike. An empty document passes (no value).
func CheckJSON(field string, data []byte, max int) error {
	if len(data) > max {
		return tooLarge(field, len(data), max)
	}
	if len(data) == 0 {
		return nil
	}
	lim := "valid UTF-8 JSON without NUL characters"
	if !utf8.Valid(data) {
		return &LimitError{Field: field, Limit: lim, Problem: "is not valid UTF-8"}
	}
	if problem := scanJSONText(data); problem != "" {
		return &LimitError{Field: field, Limit: lim, Problem: problem}
	}
	if !json.Valid(data) {
		return &LimitError{Field: field, Limit: lim, Problem: "is not valid JSON"}
	}
	return nil
}

// scanJSONText looks for what CheckJSON refuses besides size, invalid
// UTF-8 and syntax: a raw NUL byte, a \u0000 escape in a string, or an
// unpaired surrogate escape. It walks the bytes once without decoding and
// returns "" when none is there. Syntax errors are left to json.Valid.
func scanJSONText(b []byte) string {
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == 0 {
			return fmt.Sprintf("NUL byte at offset %d", i)
		}
		if !inString {
			if c == '"' {
				inString = true
			}
			continue
		}
		switch c {
		case '"':
			inString = false
		case '\\':
			if i+1 >= len(b) {
				return ""
			}
			i++
			if b[i] != 'u' {
				continue
			}
			r, ok := hex4(b, i+1)
			if !ok {
				return ""
			}
			switch {
			case r == 0:
				return fmt.Sprintf(`\u0000 escape at offset %d`, i-1)
			case r >= 0xDC00 && r <= 0xDFFF:
				return fmt.Sprintf("unpaired surrogate escape at offset %d", i-1)
			case r >= 0xD800 && r <= 0xDBFF:
				lo, ok := rune(0), i+6 < len(b) && b[i+5] == '\\' && b[i+6] == 'u'
				if ok {
					lo, ok = hex4(b, i+7)
				}
				if !ok || lo < 0xDC00 || lo > 0xDFFF {
					return fmt.Sprintf("unpaired surrogate escape at offset %d", i-1)
				}
				i += 10 // the high and low escapes
			default:
				i += 4
			}
		}
	}
	return ""
}

// hex4 decodes the four hex digits at b[i:i+4].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// CheckMetadata checks metadata as a store writes it: encoded as JSON, at
// most max bytes and without NUL characters.
func CheckMetadata(field string, md map[string]any, max int) error {
	if len(md) == 0 {
		return nil
	}
	b, err := json.Marshal(md)
	if err != nil {
		return &LimitError{Field: field, Limit: "JSON-encodable values", Problem: "does not encode as JSON"}
	}
	return CheckJSON(field, b, max)
}

// CheckErrorText checks an error text as a store writes it: at most max
// bytes of valid UTF-8 without NUL. The engine makes its texts fit with
// FitErrorText first, so a store refuses only texts that did not pass
// through it.
func CheckErrorText(field, s string, max int) error {
	if len(s) > max {
		return tooLarge(field, len(s), max)
	}
	if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		return &LimitError{Field: field, Limit: "valid UTF-8 without NUL", Problem: "holds a NUL byte or invalid UTF-8"}
	}
	return nil
}

// truncationMarker ends an error text FitErrorText shortened.
const truncationMarker = " …[truncated]"

// FitErrorText returns s in a form every store accepts within limit bytes:
// NUL bytes and invalid UTF-8 become U+FFFD, and a text still longer than
// limit is cut at a UTF-8 boundary and ends with a truncation marker.
func FitErrorText(s string, limit int) string {
	if strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) {
		s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", "\uFFFD"), "\uFFFD")
	}
	if len(s) <= limit {
		return s
	}
	marker := truncationMarker
	if limit <= len(marker) {
		marker = "" // no room for it
	}
	cut := max(limit-len(marker), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + marker
}

// CheckDuration checks a duration against 0..max.
func CheckDuration(field string, d, max time.Duration) error {
	if d < 0 || d > max {
		return &LimitError{Field: field, Limit: fmt.Sprintf("0..%s", max), Problem: fmt.Sprintf("%s is out of range", d)}
	}
	return nil
}

// CheckSchedule checks a record's due and expiry times against now: a
// non-zero scheduledAt at most MaxScheduleAhead after now, and a non-zero
// expiresAt at most MaxExpiryAfterDue after the due time (scheduledAt, or
// now when it is zero). prefix starts the field names ("" or "items[2].").
func (l Limits) CheckSchedule(prefix string, now, scheduledAt, expiresAt time.Time) error {
	due := now
	if !scheduledAt.IsZero() {
		if ahead := scheduledAt.Sub(now); ahead > l.MaxScheduleAhead {
			return &LimitError{Field: prefix + "scheduled_at", Limit: fmt.Sprintf("at most %s ahead", l.MaxScheduleAhead),
				Problem: fmt.Sprintf("%s is too far ahead", scheduledAt.UTC().Format(time.RFC3339))}
		}
		if scheduledAt.After(now) {
			due = scheduledAt
		}
	}
	if !expiresAt.IsZero() && expiresAt.Sub(due) > l.MaxExpiryAfterDue {
		return &LimitError{Field: prefix + "expires_at", Limit: fmt.Sprintf("at most %s after the due time", l.MaxExpiryAfterDue),
			Problem: fmt.Sprintf("%s is too far after the due time", expiresAt.UTC().Format(time.RFC3339))}
	}
	return nil
}
