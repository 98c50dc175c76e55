package dedupe_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gymhq/herald/caps"
	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/internal/poll"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/protect"
	"github.com/gymhq/herald/schedule"
	"github.com/gymhq/herald/suppress"
)

// evictingPolicies are every maxmemory-policy Redis has but noeviction. The
// volatile ones are no safer: sent keys carry a TTL.
var evictingPolicies = []string{"allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"}

// TestCheckRefusesEvictingPolicies: with a tiny maxmemory and each policy,
// the start-up check passes noeviction only, names the policy otherwise,
// and with the override reports it instead of failing. CONFIG is renamed
// away, as managed Redis refuses it: the policy is read from INFO.
func TestCheckRefusesEvictingPolicies(t *testing.T) {
	ctx := context.Background()
	for _, policy := range append([]string{"noeviction"}, evictingPolicies...) {
		t.Run(policy, func(t *testing.T) {
			srv := redistest.StartWith(t, "--maxmemory", "2mb", "--maxmemory-policy", policy, "--rename-command", "CONFIG", "")
			if err := srv.Client().ConfigGet(ctx, "maxmemory-policy").Err(); err == nil {
				t.Fatal("CONFIG GET answered; the test wants a Redis that refuses it")
			}
			err := dedupe.NewChecker(srv.Client(), dedupe.Single, false, nil).Check(ctx)
			var ee *dedupe.EvictionError
			switch {
			case policy == "noeviction" && err != nil:
				t.Fatalf("Check on noeviction: %v", err)
			case policy != "noeviction" && (!errors.As(err, &ee) || ee.Policy != policy || !strings.Contains(err.Error(), policy)):
				t.Fatalf("Check on %s: error = %v, want an *EvictionError naming it", policy, err)
			}

			var reported []string
			err = dedupe.NewChecker(srv.Client(), dedupe.Single, true, func(e *dedupe.EvictionError) {
				reported = append(reported, e.Policy)
			}).Check(ctx)
			if err != nil {
				t.Fatalf("Check with eviction allowed: %v", err)
			}
			if want := map[bool]int{true: 0, false: 1}[policy == "noeviction"]; len(reported) != want {
				t.Fatalf("reported %v, want %d report(s)", reported, want)
			}
		})
	}
}

// TestEvictionForgetsSentKeys is why the check exists: under allkeys-lru and
// memory pressure a sent key is evicted, and the same notification is
// claimed (so sent) again; nothing tells anyone.
func TestEvictionForgetsSentKeys(t *testing.T) {
	ctx := context.Background()
	srv := redistest.StartWith(t, "--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru")
	store := dedupe.NewRedis(srv.Client(), dedupe.Options{})
	t.Cleanup(func() { _ = store.Close() })
	wantAcquired(t, mustClaim(t, store, "n1", "a", long), "a")
	if err := store.MarkSent(ctx, "n1", "a", "SM1"); err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", 1024)
	for i := 0; i < 8000; i++ { // 8 MB through a 2 MB Redis
		if err := srv.Client().Set(ctx, fmt.Sprint("pad:", i), pad, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// Claimed again: a second worker would send the message a second time.
	if c := mustClaim(t, store, "n1", "b", long); !c.Acquired {
		t.Fatalf("the sent key survived 8 MB of writes through a 2 MB allkeys-lru Redis: %+v", c)
	}
}

// TestReadyFailsWhileOutOfMemory: a Redis at maxmemory under noeviction
// still answers PING (the readiness check before this change) but refuses
// every claim with OOM; Ready says so, and recovers when memory does.
func TestReadyFailsWhileOutOfMemory(t *testing.T) {
	ctx := context.Background()
	srv := redistest.StartWith(t, "--maxmemory-policy", "noeviction")
	store := dedupe.NewRedis(srv.Client(), dedupe.Options{})
	t.Cleanup(func() { _ = store.Close() })
	chk := dedupe.NewChecker(srv.Client(), dedupe.Single, false, nil)
	if err := chk.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if err := chk.Ready(ctx); err != nil {
		t.Fatalf("Ready with room: %v", err)
	}

	if err := srv.Client().ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Claim(ctx, "n1", "a", long); err == nil || !strings.Contains(err.Error(), "OOM") {
		t.Fatalf("Claim at maxmemory: error = %v, want OOM", err)
	}
	if err := srv.Client().Ping(ctx).Err(); err != nil {
		t.Fatalf("PING at maxmemory: %v (the test wants a Redis that still answers it)", err)
	}
	if err := chk.Ready(ctx); !errors.Is(err, dedupe.ErrOutOfMemory) {
		t.Fatalf("Ready at maxmemory: %v, want ErrOutOfMemory", err)
	}

	if err := srv.Client().ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if err := chk.Ready(ctx); err != nil {
		t.Fatalf("Ready after memory was freed: %v", err)
	}
	wantAcquired(t, mustClaim(t, store, "n1", "a", long), "a")
}

// TestCheckWaitsForRedis: a Redis that cannot be reached at start is not a
// configuration error; the checks run when it answers, and an evicting
// policy found then keeps the worker unready, saying why.
func TestCheckWaitsForRedis(t *testing.T) {
	ctx := context.Background()
	srv := redistest.StartWith(t, "--maxmemory-policy", "allkeys-lru")
	srv.Stop()
	opts := srv.Options()
	opts.MaxRetries, opts.DialerRetries = -1, 1
	client := redis.NewClient(opts)
	t.Cleanup(func() { _ = client.Close() })
	chk := dedupe.NewChecker(client, dedupe.Single, false, nil)
	if err := chk.Check(ctx); err != nil {
		t.Fatalf("Check with Redis down: %v, want nil (start unready)", err)
	}
	if err := chk.Ready(ctx); err == nil {
		t.Fatal("Ready with Redis down: nil")
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	var ee *dedupe.EvictionError
	poll.UntilNil(t, 10*time.Second, "Ready to report the policy", func() error {
		if err := chk.Ready(ctx); !errors.As(err, &ee) {
			return fmt.Errorf("Ready: %v", err)
		}
		return nil
	})
	if err := chk.Check(ctx); !errors.As(err, &ee) || ee.Policy != "allkeys-lru" {
		t.Fatalf("Check after the late check: %v", err)
	}
}

// aclCommands are the commands the documented ACL user gets
// (HERALD_REDIS_USERNAME): scripts and the commands they run, the start-up
// checks, the suppression list, and redis_rate's script.
var aclCommands = []string{"+@scripting", "+ping", "+info", "+get", "+set", "+time", "+del", "+pexpire", "+pttl",
	"+hmget", "+hget", "+hset", "+hsetnx", "+hdel", "+hscan",
	// the scheduler's index and the frequency caps (sorted sets and sets)
	"+hexists", "+zadd", "+zrem", "+zscore", "+zcard", "+zrange", "+zrangebyscore", "+zremrangebyscore", "+sadd", "+srem", "+smembers"}

// TestDocumentedACLUser: a user with exactly the documented commands on the
// documented keys passes every check and runs every store, list and limiter
// call; one without INFO is refused at start, not left failing its checks.
func TestDocumentedACLUser(t *testing.T) {
	ctx := context.Background()
	user := append([]string{"--user", "herald", "on", ">pw", "~herald:*", "~rate:herald:*"}, aclCommands...)
	noInfo := []string{"--user", "noinfo", "on", ">pw", "~*", "+@all", "-info"}
	srv := redistest.StartWith(t, append(append(user, noInfo...), "--user", "default", "off")...)

	client := connect(t, dedupe.Target{URL: srv.URL(), Security: dedupe.Security{Username: "herald", Password: "pw"}})
	if err := dedupe.CheckAccess(ctx, client); err != nil {
		t.Fatalf("CheckAccess: %v", err)
	}
	chk := dedupe.NewChecker(client, dedupe.Single, false, nil)
	if err := chk.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if err := chk.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	store := dedupe.NewRedis(client, dedupe.Options{})
	t.Cleanup(func() { _ = store.Close() })
	wantAcquired(t, mustClaim(t, store, "n1", "a", long), "a")
	for name, err := range map[string]error{
		"mark sent":   store.MarkSent(ctx, "n1", "a", "pm"),
		"mark failed": store.MarkFailed(ctx, "n2", "a", "rejected"),
		"release":     store.Release(ctx, "n1", "a"),
	} {
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := store.Rearm(ctx, "n2"); err != nil {
		t.Errorf("rearm: %v", err)
	}
	list := suppress.NewRedis(client, "", nil)
	t.Cleanup(func() { _ = list.Close() })
	if err := list.Add(ctx, "email", "a@example.com", "bounced"); err != nil {
		t.Errorf("suppress add: %v", err)
	}
	if _, _, err := list.Lookup(ctx, "email", "a@example.com"); err != nil {
		t.Errorf("suppress lookup: %v", err)
	}
	if _, err := list.List(ctx, ""); err != nil {
		t.Errorf("suppress list: %v", err)
	}
	if _, err := list.Remove(ctx, "email", "a@example.com"); err != nil {
		t.Errorf("suppress remove: %v", err)
	}
	if _, err := protect.NewRedisLimiter(client, "herald:email", 10).Wait(ctx); err != nil {
		t.Errorf("rate limiter: %v", err)
	}
	// The scheduler's index and the frequency caps (the dispatcher and
	// every channel role run them).
	idx := schedule.NewRedis(client, schedule.RedisOptions{})
	now := time.Now()
	if _, err := idx.Add(ctx, []schedule.Entry{{ID: "n1", Due: now, Keys: []string{"k1"}, Record: []byte("{}")}, {ID: "n2", Due: now, Keys: []string{"k2"}, Record: []byte("{}"), EventTime: now}}); err != nil {
		t.Errorf("schedule add: %v", err)
	}
	if _, err := idx.Cancel(ctx, []schedule.Cancellation{{Key: "k2", At: now}}, time.Hour); err != nil {
		t.Errorf("schedule cancel: %v", err)
	}
	if es, err := idx.Due(ctx, now, 10, time.Minute); err != nil || len(es) != 1 {
		t.Errorf("schedule due: %v %v", es, err)
	}
	if err := idx.Done(ctx, []string{"n1"}, time.Hour); err != nil {
		t.Errorf("schedule done: %v", err)
	}
	if _, err := idx.Missing(ctx, 2); err != nil {
		t.Errorf("schedule missing: %v", err)
	}
	if err := idx.MarkReady(ctx, 0); err != nil {
		t.Errorf("schedule ready: %v", err)
	}
	if _, err := idx.Lock(ctx, 0, "me", time.Minute); err != nil {
		t.Errorf("schedule lock: %v", err)
	}
	if _, err := idx.Pending(ctx); err != nil {
		t.Errorf("schedule pending: %v", err)
	}
	if _, err := caps.NewRedis(client, "").Take(ctx, caps.Key("p", "push", "reminders"), "n1", caps.Limit{Max: 1, Per: time.Hour}, now); err != nil {
		t.Errorf("frequency cap: %v", err)
	}

	other := connect(t, dedupe.Target{URL: srv.URL(), Security: dedupe.Security{Username: "noinfo", Password: "pw"}})
	if err := dedupe.NewChecker(other, dedupe.Single, false, nil).Check(ctx); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("Check as a user without INFO: %v, want NOPERM", err)
	}
}

// TestReplicaIsNotReady: a URL that reaches a read-only replica (a primary
// endpoint between failovers, or a wrong address) would fail every write
// with READONLY; Ready says so, and it is not final.
func TestReplicaIsNotReady(t *testing.T) {
	ctx := context.Background()
	srv := redistest.StartWith(t, "--replicaof", "127.0.0.1", "1")
	chk := dedupe.NewChecker(srv.Client(), dedupe.Single, false, nil)
	if err := chk.Check(ctx); err != nil {
		t.Fatalf("Check on a replica: %v, want nil (not final)", err)
	}
	if err := chk.Ready(ctx); err == nil || !strings.Contains(err.Error(), "read-only replica") {
		t.Fatalf("Ready on a replica: %v", err)
	}
	if err := srv.Client().ReplicaOf(ctx, "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	if err := chk.Ready(ctx); err != nil {
		t.Fatalf("Ready once it is a master: %v", err)
	}
}

// TestReadyNoticesPolicyChanges: a maxmemory-policy changed to an evicting
// one while the worker runs makes it unready until it is changed back; with
// the override, the change and the fix are each reported once.
func TestReadyNoticesPolicyChanges(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	setPolicy := func(p string) {
		t.Helper()
		if err := srv.Client().ConfigSet(ctx, "maxmemory-policy", p).Err(); err != nil {
			t.Fatal(err)
		}
	}
	var reports []string
	strict := dedupe.NewChecker(srv.Client(), dedupe.Single, false, nil)
	allowed := dedupe.NewChecker(srv.Client(), dedupe.Single, true, func(e *dedupe.EvictionError) {
		if e == nil {
			reports = append(reports, "safe")
		} else {
			reports = append(reports, e.Policy)
		}
	})
	for _, chk := range []*dedupe.Checker{strict, allowed} {
		if err := chk.Ready(ctx); err != nil {
			t.Fatalf("Ready on noeviction: %v", err)
		}
	}

	setPolicy("allkeys-lru")
	var ee *dedupe.EvictionError
	if err := strict.Ready(ctx); !errors.As(err, &ee) || ee.Policy != "allkeys-lru" {
		t.Fatalf("Ready after the policy changed: %v, want an *EvictionError", err)
	}
	if err := strict.Check(ctx); err != nil {
		t.Fatalf("Check (the start-up verdict) after the change: %v, want nil", err)
	}
	for range 2 {
		if err := allowed.Ready(ctx); err != nil {
			t.Fatalf("Ready with the override: %v", err)
		}
	}

	setPolicy("noeviction")
	if err := strict.Ready(ctx); err != nil {
		t.Fatalf("Ready after the policy was changed back: %v", err)
	}
	if err := allowed.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(reports, ","); got != "allkeys-lru,safe" {
		t.Errorf("reports %q, want the change and the fix once each", got)
	}
}
