package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	zapobserver "go.uber.org/zap/zaptest/observer"

	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/internal/kafkatest"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/suppress"
)

// TestRunRefusesUnsafeRedis: a Redis herald cannot keep its promises on
// stops `herald run` at start with one line naming what is wrong and the
// variable to change: an evicting maxmemory-policy, a cluster node reached
// in single mode (which answered PING and failed every claim with MOVED),
// a sentinel reached in single mode. The operator commands connect through
// the same factory: they work on a cluster and refuse a node in single mode.
func TestRunRefusesUnsafeRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildHerald(t)
	kafka := kafkatest.Start(t)
	lru := redistest.StartWith(t, "--maxmemory-policy", "allkeys-lru")
	cluster := redistest.StartCluster(t, 3, 0)
	sentinel := redistest.StartSentinel(t)
	for _, tc := range []struct {
		name string
		env  []string
		want []string
	}{
		{"evicting policy", []string{"HERALD_REDIS_URL=" + lru.URL()}, []string{"allkeys-lru", "HERALD_REDIS_ALLOW_EVICTION=on"}},
		{"cluster node in single mode", []string{"HERALD_REDIS_URL=redis://" + cluster.Addrs()[0]}, []string{"HERALD_REDIS_MODE=cluster", "MOVED"}},
		{"sentinel in single mode", []string{"HERALD_REDIS_URL=" + sentinel.URL()}, []string{"HERALD_REDIS_MODE=sentinel", "HERALD_REDIS_MASTER_NAME"}},
		{"a master name the sentinels do not know", []string{"HERALD_REDIS_URL=" + sentinel.URL(), "HERALD_REDIS_MODE=sentinel", "HERALD_REDIS_MASTER_NAME=nosuch"}, []string{"HERALD_REDIS_MASTER_NAME", "no master by that name"}},
		{"sentinel mode without a master name", []string{"HERALD_REDIS_URL=" + sentinel.URL(), "HERALD_REDIS_MODE=sentinel"}, []string{"HERALD_REDIS_MASTER_NAME", "required"}},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			cmd := exec.Command(bin, "run", "--role", "email")
			cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HERALD_KAFKA_BROKERS=" + kafka.Brokers()[0],
				"HERALD_SMTP_ADDR=127.0.0.1:1", "HERALD_EMAIL_FROM=a@example.com", "HERALD_HTTP_ADDR=127.0.0.1:0"}, tc.env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 {
				t.Fatalf("exit: %v, want non-zero; stderr:\n%s", err, stderr.String())
			}
			// The reason is the one line herald prints; go-redis may have
			// logged its retries (JSON) before it.
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			out := lines[len(lines)-1]
			if !strings.HasPrefix(out, "herald: ") {
				t.Errorf("last line of stderr %q is not herald's reason", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("stderr %q: want it to say %q", out, w)
				}
			}
			t.Logf("%s", out)
		})
	}

	// The operator commands connect as the workers do.
	cc := redistest.StartCluster(t, 3, 0)
	if err := suppress.NewRedis(cc.Client(), "", nil).Add(context.Background(), "sms", "+447700900123", "unsubscribed"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, mode, url string
		code            int
		want            string
	}{
		{"suppressions list in cluster mode", "cluster", cc.URL(), 0, "unsubscribed"},
		{"suppressions list on a cluster node in single mode", "single", "redis://" + cc.Addrs()[1], 2, "set HERALD_REDIS_MODE=cluster"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			cmd := exec.Command(bin, "suppressions", "list")
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HERALD_REDIS_URL=" + tc.url, "HERALD_REDIS_MODE=" + tc.mode}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || !strings.Contains(stdout.String()+stderr.String(), tc.want) {
				t.Errorf("exit %d, want %d saying %q; stdout:\n%s\nstderr:\n%s", code, tc.code, tc.want, stdout.String(), stderr.String())
			}
		})
	}
}

// redisFleetConfig is an email worker's configuration on url.
func redisFleetConfig(t *testing.T, url string) *config.Config {
	t.Helper()
	cfg := config.Defaults()
	cfg.Role, cfg.KafkaBrokers, cfg.InstanceID = config.RoleEmail, []string{"127.0.0.1:1"}, "t"
	cfg.RedisURL = url
	cfg.SMTPAddr, cfg.EmailFrom = "127.0.0.1:1", "a@example.com"
	return cfg
}

// TestRedisEvictionAllowed: with HERALD_REDIS_ALLOW_EVICTION=on the worker
// starts on an evicting Redis, warns once naming the policy, and sets the
// gauge an alert can watch, which returns to 0 once the policy is fixed.
func TestRedisEvictionAllowed(t *testing.T) {
	srv := redistest.StartWith(t, "--maxmemory-policy", "volatile-lru")
	cfg := redisFleetConfig(t, srv.URL())
	cfg.RedisAllowEviction = config.On
	core, logs := zapobserver.New(zap.WarnLevel)
	f, closeAll, err := buildFleet(cfg, zap.New(core), fleetOptions{})
	if err != nil {
		t.Fatalf("buildFleet: %v", err)
	}
	defer closeAll()
	// The checks run when the fleet reaches Redis at start.
	if err := redisDependency(cfg, f.redis, f.redisCheck).Reach(context.Background()); err != nil {
		t.Fatalf("reaching redis: %v", err)
	}
	if g := testutil.ToFloat64(f.metrics.RedisEvictionUnsafe); g != 1 {
		t.Errorf("herald_redis_eviction_policy_unsafe = %v, want 1", g)
	}
	warned := logs.FilterField(zap.String("maxmemory_policy", "volatile-lru")).Len()
	if warned != 1 {
		t.Errorf("%d warnings naming the policy, want 1: %v", warned, logs.All())
	}
	if err := f.ping(context.Background()); err != nil {
		t.Errorf("readiness on an allowed policy: %v", err)
	}
	if warned := logs.FilterField(zap.String("maxmemory_policy", "volatile-lru")).Len(); warned != 1 {
		t.Errorf("%d warnings after a readiness probe, want still 1", warned)
	}
	// Fixed while running: the gauge follows at the next probe.
	if err := srv.Client().ConfigSet(context.Background(), "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.ping(context.Background()); err != nil {
		t.Errorf("readiness on noeviction: %v", err)
	}
	if g := testutil.ToFloat64(f.metrics.RedisEvictionUnsafe); g != 0 {
		t.Errorf("herald_redis_eviction_policy_unsafe = %v after the policy was fixed, want 0", g)
	}
}

// TestRedisReadinessUnderOOM: /readyz's Redis check fails while Redis
// refuses writes for lack of memory, though PING answers, and passes again
// once it has room.
func TestRedisReadinessUnderOOM(t *testing.T) {
	srv := redistest.Start(t)
	f, closeAll, err := buildFleet(redisFleetConfig(t, srv.URL()), zap.NewNop(), fleetOptions{})
	if err != nil {
		t.Fatalf("buildFleet: %v", err)
	}
	defer closeAll()
	ctx := context.Background()
	if err := f.ping(ctx); err != nil {
		t.Fatalf("readiness with room: %v", err)
	}
	if g := testutil.ToFloat64(f.metrics.RedisEvictionUnsafe); g != 0 {
		t.Errorf("herald_redis_eviction_policy_unsafe = %v on noeviction, want 0", g)
	}
	if err := srv.Client().ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Client().Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.ping(ctx); !errors.Is(err, dedupe.ErrOutOfMemory) {
		t.Fatalf("readiness at maxmemory: %v, want ErrOutOfMemory", err)
	}
	if err := srv.Client().ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.ping(ctx); err != nil {
		t.Fatalf("readiness after memory was freed: %v", err)
	}
}

// TestReadinessAnswersWhileRedisIsFrozen: /readyz answers within its 2 s
// check even while Redis accepts connections and never replies (a frozen
// host, SIGSTOP): an outside tester saw it take 5 s, past the deployment's
// probe timeout (3 s), so the kubelet never saw the reason. go-redis waits
// for its read timeout, not for the request's context.
func TestReadinessAnswersWhileRedisIsFrozen(t *testing.T) {
	srv := redistest.Start(t)
	f, closeAll, err := buildFleet(redisFleetConfig(t, srv.URL()), zap.NewNop(), fleetOptions{})
	if err != nil {
		t.Fatalf("buildFleet: %v", err)
	}
	defer closeAll()
	if err := readyWithin(context.Background(), readyTimeout, f.readyWaitsOn(), f.ping); err != nil {
		t.Fatalf("readiness on a live Redis: %v", err)
	}
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Resume() })
	answered := make(chan error, 1)
	go func() { answered <- readyWithin(context.Background(), readyTimeout, f.readyWaitsOn(), f.ping) }()
	select {
	case err := <-answered:
		if err == nil || !strings.Contains(err.Error(), "(HERALD_REDIS_URL): no answer within 2s") {
			t.Errorf("readiness with Redis frozen: %v, want Redis and its variable named, no answer within 2s", err)
		}
		t.Logf("readiness with Redis frozen: %v", err)
	case <-time.After(3 * time.Second): // the deployment's probe timeout
		t.Fatal("readiness with Redis frozen did not answer before the probe's timeout")
	}
}
