package redis

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"

	"github.com/queuesgo/queues/backend/backendtest"
	goredis "github.com/redis/go-redis/v9"
)

// clusterAddrs returns seed addresses of a Redis Cluster: env
// QUEUES_TEST_REDIS_CLUSTER (comma-separated host:port), or a one-node
// cluster started here from the redis-server binary (all 16384 slots on one
// primary), stopped when the test ends. It skips when neither is available.
func clusterAddrs(t *testing.T) []string {
	t.Helper()
	if env := os.Getenv("QUEUES_TEST_REDIS_CLUSTER"); env != "" {
		return strings.Split(env, ",")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("no Redis Cluster: set QUEUES_TEST_REDIS_CLUSTER or install redis-server")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	if port > 55000 {
		t.Skip("no free port below 55000 for the cluster bus")
	}
	dir := t.TempDir()
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
		"--cluster-config-file", filepath.Join(dir, "nodes.conf"), "--save", "", "--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	defer c.Close()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(ctx).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatal("cluster node did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		t.Fatalf("CLUSTER ADDSLOTSRANGE: %v", err)
	}
	for {
		info, _ := c.ClusterInfo(ctx).Result()
		if strings.Contains(info, "cluster_state:ok") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster not ok: %s", info)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return []string{addr}
}

// TestClusterContract runs the whole contract suite through a
// *redis.ClusterClient: every key of a prefix carries the prefix's hash tag,
// so every script runs within one slot.
func TestClusterContract(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster run skipped in -short mode")
	}
	addrs := clusterAddrs(t)
	client := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { _ = client.Close() })
	if err := client.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("cluster ping: %v", err)
	}
	backendtest.Run(t, backendtest.Factory{
		New: func(t *testing.T) driver.Backend {
			b, err := New(client, Options{Prefix: randName("p"), Namespace: randName("ns")})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Open(context.Background()); err != nil {
				t.Fatalf("Open: %v", err)
			}
			t.Cleanup(func() {
				_ = b.Close(context.Background())
				if err := deletePrefix(context.Background(), client, b.prefix); err != nil {
					t.Errorf("delete prefix: %v", err)
				}
			})
			return b
		},
	})
}
