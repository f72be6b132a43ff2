package driver_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// refusedDial returns the error of dialing a local port nobody listens on.
func refusedDial(t *testing.T) error {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		_ = c.Close()
		t.Skip("a closed port accepted a connection")
	}
	return err
}

// peerClosed returns the errors a client sees when its server goes away:
// the read after an orderly close (io.EOF) and a read after a reset.
func peerClosed(t *testing.T) (eof, reset error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	read := func(abort bool) error {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s := <-accepted
		if abort {
			_ = s.(*net.TCPConn).SetLinger(0)
		}
		_ = s.Close()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
		return err
	}
	return read(false), read(true)
}

// readTimeout returns the error of a read whose deadline passed.
func readTimeout(t *testing.T) error {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
	_, err = c.Read(make([]byte, 1))
	return err
}

func TestDefaultClassify(t *testing.T) {
	eof, reset := peerClosed(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	cases := []struct {
		name string
		err  error
		want driver.ErrorClass
	}{
		{"nil", nil, driver.ClassUnknown},
		{"plain", errors.New("something else"), driver.ClassUnknown},
		{"refused", fmt.Errorf("claim: %w", refusedDial(t)), driver.ClassTransient},
		{"peer closed", eof, driver.ClassTransient},
		{"peer reset", reset, driver.ClassTransient},
		{"read timeout", readTimeout(t), driver.ClassTransient},
		{"call deadline", ctx.Err(), driver.ClassTransient},
		{"unexpected EOF", fmt.Errorf("read reply: %w", io.ErrUnexpectedEOF), driver.ClassTransient},
		{"use of closed conn", &net.OpError{Op: "write", Net: "tcp", Err: net.ErrClosed}, driver.ClassTransient},
		{"broken pipe", &net.OpError{Op: "write", Net: "tcp", Err: &os.SyscallError{Syscall: "write", Err: syscall.EPIPE}}, driver.ClassTransient},
		{"wrapped unavailable", fmt.Errorf("%w: failover in progress", driver.ErrUnavailable), driver.ClassTransient},
		{"wrapped invalid data", fmt.Errorf("%w: NUL byte", driver.ErrInvalidData), driver.ClassInvalidData},
		{"config", &queuestype.ConfigError{Field: "Priority", Problem: "out of range"}, driver.ClassInvalidData},
		{"disk full", &os.PathError{Op: "write", Path: "/data/q.db", Err: syscall.ENOSPC}, driver.ClassPermanent},
		{"closed store", fmt.Errorf("complete: %w", queuestype.ErrClosed), driver.ClassPermanent},
		{"fence lost", fmt.Errorf("complete: %w", queuestype.ErrFenceLost), driver.ClassPermanent},
		{"caller cancelled", context.Canceled, driver.ClassUnknown},
	}
	for _, c := range cases {
		if got := driver.DefaultClassify(c.err); got != c.want {
			t.Errorf("%s (%v): %s, want %s", c.name, c.err, got, c.want)
		}
	}
}

// classifyingStore recognises one error of its own and nothing else.
type classifyingStore struct {
	driver.Backend
	own error
}

func (s classifyingStore) ClassifyError(err error) driver.ErrorClass {
	if errors.Is(err, s.own) {
		return driver.ClassInvalidData
	}
	return driver.ClassUnknown
}

func TestClassifyPrefersTheStore(t *testing.T) {
	own := errors.New("value too long for this store")
	s := classifyingStore{own: own}
	if got := driver.Classify(s, fmt.Errorf("complete: %w", own)); got != driver.ClassInvalidData {
		t.Errorf("the store's own error: %s", got)
	}
	// What the store does not recognise falls back to the default rules.
	if got := driver.Classify(s, io.ErrUnexpectedEOF); got != driver.ClassTransient {
		t.Errorf("fallback: %s", got)
	}
	// A store without a classifier gets the default rules only.
	if got := driver.Classify(struct{ driver.Backend }{}, own); got != driver.ClassUnknown {
		t.Errorf("no classifier: %s", got)
	}
	if got := driver.Classify(s, nil); got != driver.ClassUnknown {
		t.Errorf("nil: %s", got)
	}
	for c, want := range map[driver.ErrorClass]string{driver.ClassUnknown: "unknown", driver.ClassTransient: "transient",
		driver.ClassPermanent: "permanent", driver.ClassInvalidData: "invalid_data"} {
		if c.String() != want {
			t.Errorf("%d.String() = %q", c, c.String())
		}
	}
}
