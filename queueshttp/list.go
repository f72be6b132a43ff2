package queueshttp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
)

// include is the set of large record fields a list request asked for.
type include struct{ args, result, metadata, errors bool }

// includeFields are the values of the include query parameter.
const includeFields = "args, result, metadata, errors"

// parseInclude reads include=args,result,metadata,errors (any subset,
// repeated or comma-separated).
func parseInclude(vals []string) (include, error) {
	var inc include
	for _, v := range vals {
		for f := range strings.SplitSeq(v, ",") {
			switch strings.TrimSpace(f) {
			case "args":
				inc.args = true
			case "result":
				inc.result = true
			case "metadata":
				inc.metadata = true
			case "errors":
				inc.errors = true
			case "":
			default:
				return include{}, fmt.Errorf("include takes %s; not %q", includeFields, f)
			}
		}
	}
	return inc, nil
}

// listSuffixMax bounds the bytes after the last item:
// `],"next_cursor":"<36-char uuid>"}` and a newline.
const listSuffixMax = len(`],"next_cursor":""}`) + 36 + 1

// encodeTaskList writes the body of GET /api/tasks: the page's items as
// summaries (or with the fields inc asks for), stopping before the body
// would pass maxBytes. When it stops early, next_cursor is the last item it
// wrote, so the client's next page starts right after it. The first item is
// always written, so paging makes progress whatever the cap.
func encodeTaskList(page queues.TaskPage, inc include, maxBytes int) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(`{"items":[`)
	next := page.NextCursor
	for i, rec := range page.Items {
		item, err := encodeListItem(rec, inc)
		if err != nil {
			return nil, err
		}
		if i > 0 && buf.Len()+1+len(item)+listSuffixMax > maxBytes {
			next = page.Items[i-1].ID
			break
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(item)
	}
	buf.WriteString(`],"next_cursor":`)
	if next == uuid.Nil {
		buf.WriteString("null")
	} else {
		buf.WriteString(`"` + next.String() + `"`)
	}
	buf.WriteString("}\n")
	return buf.Bytes(), nil
}

// encodeListItem encodes rec as the API does everywhere, then drops the
// fields the request did not include. The dropped fields are cleared on a
// copy first, so a large argument is never encoded only to be thrown away.
func encodeListItem(rec *queues.Record, inc include) ([]byte, error) {
	if inc.args && inc.result && inc.metadata && inc.errors {
		return json.Marshal(rec)
	}
	c := *rec
	omit := make(map[string]bool, 4)
	if !inc.args {
		c.Args, omit["args"] = nil, true
	}
	if !inc.result {
		c.Result, omit["result"] = nil, true
	}
	if !inc.metadata {
		c.Metadata, omit["metadata"] = nil, true
	}
	if !inc.errors {
		// The error history can reach ErrorHistoryBytes per record: a
		// page carries it only when asked.
		c.Errors, omit["errors"] = nil, true
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	return omitKeys(b, omit)
}

// omitKeys rewrites the JSON object b without the top-level keys in omit,
// keeping the order of the others.
func omitKeys(b []byte, omit map[string]bool) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("queueshttp: record does not encode as a JSON object: %s", b)
	}
	out := make([]byte, 0, len(b))
	out = append(out, '{')
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("queueshttp: re-read record JSON: %w", err)
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("queueshttp: re-read record JSON: %w", err)
		}
		if omit[key] {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		k, err := json.Marshal(key)
		if err != nil {
			return nil, err
		}
		out = append(out, k...)
		out = append(out, ':')
		out = append(out, v...)
	}
	return append(out, '}'), nil
}
