package redis

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"
	goredis "github.com/redis/go-redis/v9"
)

// TestClassifyError classifies errors as go-redis returns them: server
// replies (produced by the live server through redis.error_reply, so the
// client parses them as it would a real LOADING or READONLY), a refused
// dial, a pool timeout and a closed client.
func TestClassifyError(t *testing.T) {
	requireServer(t)
	ctx := context.Background()
	o, err := goredis.ParseURL(testURL())
	if err != nil {
		t.Fatal(err)
	}
	o.MaxRetries = -1 // see each error once, as the store would
	c := goredis.NewClient(o)
	defer c.Close()
	b := &Backend{}

	reply := func(msg string) error {
		err := c.Eval(ctx, "return redis.error_reply(ARGV[1])", nil, msg).Err()
		if err == nil {
			t.Fatalf("error_reply(%q) returned no error", msg)
		}
		return err
	}
	cases := []struct {
		name string
		err  error
		want driver.ErrorClass
	}{
		{"LOADING", reply("LOADING Redis is loading the dataset in memory"), driver.ClassTransient},
		{"READONLY", reply("READONLY You can't write against a read only replica."), driver.ClassTransient},
		{"MASTERDOWN", reply("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."), driver.ClassTransient},
		{"TRYAGAIN", reply("TRYAGAIN Multiple keys request during rehashing of slot"), driver.ClassTransient},
		{"CLUSTERDOWN", reply("CLUSTERDOWN The cluster is down"), driver.ClassTransient},
		{"BUSY", reply("BUSY Redis is busy running a script."), driver.ClassTransient},
		{"max clients", reply("ERR max number of clients reached"), driver.ClassTransient},
		{"NOAUTH", reply("NOAUTH Authentication required."), driver.ClassPermanent},
		{"WRONGPASS", reply("WRONGPASS invalid username-password pair or user is disabled."), driver.ClassPermanent},
		{"NOPERM", reply("NOPERM this user has no permissions to run the 'evalsha' command"), driver.ClassPermanent},
		{"MISCONF", reply("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk."), driver.ClassPermanent},
		{"script error", reply("ERR something the script did not like"), driver.ClassUnknown},
		{"WRONGTYPE", c.HGet(ctx, setKey(t, c), "f").Err(), driver.ClassUnknown},
		{"nil reply", c.Get(ctx, randName("missing")).Err(), driver.ClassUnknown},
	}

	// A refused dial: a local port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	down := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer down.Close()
	cases = append(cases, struct {
		name string
		err  error
		want driver.ErrorClass
	}{"refused", down.Ping(ctx).Err(), driver.ClassTransient})

	// A pool timeout: the only connection is held by a blocking command.
	one := *o
	one.PoolSize, one.PoolTimeout, one.MinIdleConns, one.MaxIdleConns = 1, 20*time.Millisecond, 0, 0
	small := goredis.NewClient(&one)
	defer small.Close()
	// The blocking command retries until it holds the connection (the
	// pings may hold it first and time it out), and the pings pause
	// between tries so that it can.
	held, stop := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(held)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = small.BLPop(ctx, 200*time.Millisecond, randName("block")).Err()
		}
	}()
	var poolErr error
	deadline := time.Now().Add(5 * time.Second)
	for poolErr == nil && time.Now().Before(deadline) {
		if poolErr = small.Ping(ctx).Err(); poolErr == nil {
			time.Sleep(2 * time.Millisecond)
		}
	}
	close(stop)
	<-held
	cases = append(cases, struct {
		name string
		err  error
		want driver.ErrorClass
	}{"pool timeout", poolErr, driver.ClassTransient})

	closed := goredis.NewClient(o)
	_ = closed.Close()
	cases = append(cases, struct {
		name string
		err  error
		want driver.ErrorClass
	}{"closed client", closed.Ping(ctx).Err(), driver.ClassPermanent})

	for _, tc := range cases {
		if tc.err == nil {
			t.Errorf("%s: no error to classify", tc.name)
			continue
		}
		if got := driver.Classify(b, tc.err); got != tc.want {
			t.Errorf("%s (%v): %s, want %s", tc.name, tc.err, got, tc.want)
		}
	}
}

// setKey stores a plain string under a fresh key and returns the key.
func setKey(t *testing.T, c *goredis.Client) string {
	t.Helper()
	k := randName("str")
	if err := c.Set(context.Background(), k, "v", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	return k
}
