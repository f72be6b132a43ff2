package sqlite

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"errors"
	"fmt"
	"io"
)

// dconn is the writer's connection at the driver level. The writer goroutine
// runs inside sql.Conn.Raw and drives the driver directly: prepared
// statements are executed without database/sql's per-call argument
// conversion, locking and Result/Rows wrappers, and rows are decoded from
// driver values without reflection. (Measured: about a tenth of the
// writer's time per job went to database/sql.)
type dconn struct {
	c     sqldriver.Conn
	stmts map[string]sqldriver.Stmt
	nv    []sqldriver.NamedValue
	dest  []sqldriver.Value
}

// maxStmts bounds the statement cache: dynamic statements (per-queue claims,
// IN lists) must not grow it forever.
const maxStmts = 512

func newDconn(c sqldriver.Conn) *dconn {
	return &dconn{c: c, stmts: make(map[string]sqldriver.Stmt)}
}

// close finalizes the cached statements.
func (d *dconn) close() {
	for q, s := range d.stmts {
		_ = s.Close()
		delete(d.stmts, q)
	}
}

// stmt returns the prepared statement for query, preparing it on first use.
func (d *dconn) stmt(query string) (sqldriver.Stmt, error) {
	if s := d.stmts[query]; s != nil {
		return s, nil
	}
	var (
		s   sqldriver.Stmt
		err error
	)
	if pc, ok := d.c.(sqldriver.ConnPrepareContext); ok {
		s, err = pc.PrepareContext(context.Background(), query)
	} else {
		s, err = d.c.Prepare(query)
	}
	if err != nil {
		return nil, err
	}
	if len(d.stmts) >= maxStmts {
		for q, old := range d.stmts {
			_ = old.Close()
			delete(d.stmts, q)
			if len(d.stmts) < maxStmts*3/4 {
				break
			}
		}
	}
	d.stmts[query] = s
	return s, nil
}

// args converts arguments into the reusable named-value buffer.
func (d *dconn) args(args []any) ([]sqldriver.NamedValue, error) {
	nv := d.nv[:0]
	for i, a := range args {
		v, err := driverValue(a)
		if err != nil {
			return nil, fmt.Errorf("sqlite: argument %d: %w", i+1, err)
		}
		nv = append(nv, sqldriver.NamedValue{Ordinal: i + 1, Value: v})
	}
	d.nv = nv
	return nv, nil
}

// driverValue converts the argument types the backend uses.
func driverValue(a any) (sqldriver.Value, error) {
	switch v := a.(type) {
	case nil, int64, string, bool, float64, []byte:
		return v, nil
	case int:
		return int64(v), nil
	}
	return sqldriver.DefaultParameterConverter.ConvertValue(a)
}

// exec runs a cached statement and returns the number of rows it changed.
func (d *dconn) exec(query string, args ...any) (int64, error) {
	s, err := d.stmt(query)
	if err != nil {
		return 0, err
	}
	nv, err := d.args(args)
	if err != nil {
		return 0, err
	}
	var res sqldriver.Result
	if se, ok := s.(sqldriver.StmtExecContext); ok {
		res, err = se.ExecContext(context.Background(), nv)
	} else {
		//lint:ignore SA1019 fallback for drivers without StmtExecContext
		res, err = s.Exec(namedToValues(nv))
	}
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// script runs SQL text that may hold several statements (DDL), uncached.
func (d *dconn) script(query string, args ...any) error {
	ec, ok := d.c.(sqldriver.ExecerContext)
	if !ok {
		return errors.New("sqlite: driver connection cannot execute scripts")
	}
	nv, err := d.args(args)
	if err != nil {
		return err
	}
	_, err = ec.ExecContext(context.Background(), query, nv)
	return err
}

// query runs a cached statement and calls row for each result row. The row
// slice is reused: row must copy what it keeps (strings are immutable and
// may be kept).
func (d *dconn) query(query string, args []any, row func(v []sqldriver.Value) error) error {
	s, err := d.stmt(query)
	if err != nil {
		return err
	}
	nv, err := d.args(args)
	if err != nil {
		return err
	}
	var rows sqldriver.Rows
	if sq, ok := s.(sqldriver.StmtQueryContext); ok {
		rows, err = sq.QueryContext(context.Background(), nv)
	} else {
		//lint:ignore SA1019 fallback for drivers without StmtQueryContext
		rows, err = s.Query(namedToValues(nv))
	}
	if err != nil {
		return err
	}
	n := len(rows.Columns())
	if cap(d.dest) < n {
		d.dest = make([]sqldriver.Value, n)
	}
	dest := d.dest[:n]
	for {
		clear(dest)
		if err := rows.Next(dest); err != nil {
			closeErr := rows.Close()
			if errors.Is(err, io.EOF) {
				return closeErr
			}
			return err
		}
		if err := row(dest); err != nil {
			_ = rows.Close()
			return err
		}
	}
}

func namedToValues(nv []sqldriver.NamedValue) []sqldriver.Value {
	out := make([]sqldriver.Value, len(nv))
	for i := range nv {
		out[i] = nv[i].Value
	}
	return out
}

// Decoding driver values. SQLite hands back int64, float64, string, []byte
// or nil for the column types this schema uses.

func valString(v sqldriver.Value) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case []byte:
		return string(x), nil
	case int64:
		return fmt.Sprint(x), nil
	case nil:
		return "", errors.New("unexpected NULL")
	}
	return "", fmt.Errorf("unexpected %T", v)
}

func valNullString(v sqldriver.Value) (sql.NullString, error) {
	if v == nil {
		return sql.NullString{}, nil
	}
	s, err := valString(v)
	return sql.NullString{String: s, Valid: err == nil}, err
}

func valInt(v sqldriver.Value) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case float64:
		return int64(x), nil
	case nil:
		return 0, errors.New("unexpected NULL")
	}
	return 0, fmt.Errorf("unexpected %T", v)
}

func valNullInt(v sqldriver.Value) (sql.NullInt64, error) {
	if v == nil {
		return sql.NullInt64{}, nil
	}
	n, err := valInt(v)
	return sql.NullInt64{Int64: n, Valid: err == nil}, err
}

// assign stores a driver value into one of the destination types queryRow uses.
func assign(dest any, v sqldriver.Value) error {
	var err error
	switch d := dest.(type) {
	case *string:
		*d, err = valString(v)
	case *int64:
		*d, err = valInt(v)
	case *int:
		var n int64
		n, err = valInt(v)
		*d = int(n)
	case *sql.NullString:
		*d, err = valNullString(v)
	case *sql.NullInt64:
		*d, err = valNullInt(v)
	default:
		err = fmt.Errorf("unsupported destination %T", dest)
	}
	return err
}

// fromValues decodes one record row (recordColumns).
func (r *rawRec) fromValues(v []sqldriver.Value) error {
	if len(v) != 30 {
		return fmt.Errorf("sqlite: record row has %d columns, want 30", len(v))
	}
	var errs [30]error
	r.ID, errs[0] = valString(v[0])
	r.TaskName, errs[1] = valString(v[1])
	r.Args, errs[2] = valNullString(v[2])
	r.Queue, errs[3] = valString(v[3])
	r.Backend, errs[4] = valString(v[4])
	r.Profile, errs[5] = valNullString(v[5])
	r.Ref, errs[6] = valNullString(v[6])
	r.Worker, errs[7] = valNullString(v[7])
	r.Status, errs[8] = valString(v[8])
	r.Priority, errs[9] = valInt(v[9])
	r.MaxRetries, errs[10] = valInt(v[10])
	r.RetryCount, errs[11] = valInt(v[11])
	r.ScheduledAt, errs[12] = valNullInt(v[12])
	r.ExpiresAt, errs[13] = valNullInt(v[13])
	r.CreatedAt, errs[14] = valInt(v[14])
	r.QueuedAt, errs[15] = valInt(v[15])
	r.StartedAt, errs[16] = valNullInt(v[16])
	r.CompletedAt, errs[17] = valNullInt(v[17])
	r.HeartbeatAt, errs[18] = valNullInt(v[18])
	r.Result, errs[19] = valNullString(v[19])
	r.Error, errs[20] = valNullString(v[20])
	r.Key, errs[21] = valNullString(v[21])
	r.Metadata, errs[22] = valString(v[22])
	r.Policy, errs[23] = valString(v[23])
	r.Interruptions, errs[24] = valInt(v[24])
	r.DispatchUntil, errs[25] = valNullInt(v[25])
	r.SnoozeCount, errs[26] = valInt(v[26])
	r.Errors, errs[27] = valNullString(v[27])
	r.Tags, errs[28] = valNullString(v[28])
	r.RowID, errs[29] = valInt(v[29])
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("sqlite: record column %d: %w", i+1, err)
		}
	}
	return nil
}
