package dsn_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/dsn"
	"github.com/queuesgo/queues/internal/testservice"
)

// Every message that tells a user which DSN to write names every backend.
func TestErrorsNameEveryScheme(t *testing.T) {
	for _, in := range []string{"", "queues.db", "1abc:x", "ftp://x"} {
		_, err := dsn.Parse(in)
		if err == nil {
			t.Fatalf("Parse(%q): want error", in)
		}
		for _, form := range []string{"sqlite:", "postgres://", "postgresql://", "redis://", "rediss://", "memory:"} {
			if !strings.Contains(err.Error(), form) {
				t.Errorf("Parse(%q) = %q does not name %s", in, err, form)
			}
		}
	}
}

// MustExist refuses a missing SQLite file, naming the path, and creates nothing.
func TestMustExistRefusesMissingSQLite(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "typo.db")
	_, err := dsn.OpenWith(ctx, "sqlite:"+path, dsn.Options{MustExist: true})
	var nd *dsn.NoDatabaseError
	if !errors.As(err, &nd) || !errors.Is(err, queues.ErrConfig) {
		t.Fatalf("err = %v, want *NoDatabaseError matching ErrConfig", err)
	}
	if want := "no database at " + path + "; run `queues migrate` or check the path"; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the file was created (stat: %v)", err)
	}
	// Without MustExist the file is created on Open, as before.
	b, err := dsn.OpenWith(ctx, "sqlite:"+path, dsn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Open(ctx); err != nil {
		t.Fatal(err)
	}
	_ = b.Close(ctx)
	if _, err := dsn.OpenWith(ctx, "sqlite:"+path, dsn.Options{MustExist: true}); err != nil {
		t.Errorf("an existing file is refused: %v", err)
	}
}

// silentServer accepts connections and never answers, like a host whose
// port is open but speaks another protocol (or a stuck server).
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

// A server that accepts and never answers fails within the connect
// timeout with a ConnectError naming the address and the likely cause.
func TestConnectTimeoutBoundsSilentServers(t *testing.T) {
	addr := silentServer(t)
	for _, raw := range []string{
		"postgres://app:s3cretpass@" + addr + "/test?sslmode=disable",
		"redis://:s3cretpass@" + addr + "/0",
	} {
		start := time.Now()
		_, err := dsn.OpenWith(context.Background(), raw, dsn.Options{ConnectTimeout: 300 * time.Millisecond})
		took := time.Since(start)
		var ce *dsn.ConnectError
		if !errors.As(err, &ce) {
			t.Fatalf("%s: err = %v, want a *ConnectError", raw[:5], err)
		}
		if took > 3*time.Second {
			t.Errorf("%s: failed after %s, want about the 300ms timeout", raw[:5], took)
		}
		if ce.Addr != addr || !strings.Contains(err.Error(), "no answer within 300ms") {
			t.Errorf("%s: err = %q, want the address %s and the timeout named", raw[:5], err, addr)
		}
		if strings.Contains(err.Error(), "s3cretpass") {
			t.Errorf("%s: err = %q echoes the password", raw[:5], err)
		}
	}
}

// rediss:// to the plain Redis port fails within the default timeout and
// says TLS is the likely cause.
func TestRedissToPlainPortNamesTLS(t *testing.T) {
	t.Parallel()
	url := os.Getenv("QUEUES_TEST_REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	if !strings.HasPrefix(url, "redis://") {
		t.Skip("QUEUES_TEST_REDIS_URL is not a plain redis:// URL")
	}
	plain, err := dsn.Open(context.Background(), url)
	if err != nil {
		testservice.Unavailable(t, "Redis at "+dsn.Redact(url), "set QUEUES_TEST_REDIS_URL", err)
	}
	_ = plain.Close(context.Background())
	start := time.Now()
	_, err = dsn.Open(context.Background(), "rediss://"+strings.TrimPrefix(url, "redis://"))
	took := time.Since(start)
	if err == nil {
		t.Fatal("rediss:// to a plain port connected")
	}
	if took >= 10*time.Second {
		t.Errorf("failed after %s, want < 10s", took)
	}
	if !strings.Contains(err.Error(), "TLS handshake failed: is the server speaking TLS? (rediss:// to a plain port)") {
		t.Errorf("err = %q does not name the TLS mismatch", err)
	}
	t.Logf("failed after %s: %v", took.Round(time.Millisecond), err)
}
