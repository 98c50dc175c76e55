package dedupe_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/internal/poll"
	"github.com/gymhq/herald/internal/redistest"
)

// clusterStore is a Store on c made as the workers make it, in cluster mode.
func clusterStore(t *testing.T, c *redistest.Cluster) (*dedupe.Redis, redis.UniversalClient) {
	t.Helper()
	client := connect(t, dedupe.Target{URL: c.URL(), Mode: dedupe.Cluster})
	store := dedupe.NewRedis(client, dedupe.Options{})
	t.Cleanup(func() { _ = store.Close() })
	return store, client
}

// spreadIDs returns n ids whose keys fall on every master of c.
func spreadIDs(t *testing.T, c *redistest.Cluster, n int) []string {
	t.Helper()
	ids := make([]string, n)
	masters := map[string]bool{}
	for i := range ids {
		ids[i] = fmt.Sprintf("n%04d", i)
		if i < 64 {
			masters[c.MasterOf(dedupe.DefaultPrefix+ids[i])] = true
		}
	}
	if len(masters) < 3 {
		t.Fatalf("keys landed on %d masters, want 3", len(masters))
	}
	return ids
}

// TestScriptsOnCluster runs every script of the store on a three-master
// cluster, through the coalesced pipelines (each spans slots of every
// master), including the EVAL fallback after the nodes lose their script
// caches. Each script touches exactly its one key, so it runs wherever the
// key's slot lives.
func TestScriptsOnCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0)
	store, client := clusterStore(t, c)
	ctx := context.Background()
	if err := dedupe.NewChecker(client, dedupe.Cluster, false, nil).Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	ids := spreadIDs(t, c, 300)

	// Everything at once, so pipelines carry many slots.
	each := func(op string, fn func(i int, id string) error) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, len(ids))
		for i, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := fn(i, id); err != nil {
					errs <- fmt.Errorf("%s %s: %w", op, id, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	each("claim", func(i int, id string) error {
		cl, err := store.Claim(ctx, id, "a", long)
		if err == nil && !cl.Acquired {
			err = errors.New("not acquired")
		}
		return err
	})
	each("claim by another owner", func(i int, id string) error {
		cl, err := store.Claim(ctx, id, "b", long)
		if err == nil && (cl.Acquired || cl.Owner != "a") {
			err = fmt.Errorf("got %+v, want held by a", cl)
		}
		return err
	})
	// Thirds: sent, failed then rearmed, released.
	each("outcome", func(i int, id string) error {
		switch i % 3 {
		case 0:
			return store.MarkSent(ctx, id, "a", "pm-"+id)
		case 1:
			return store.MarkFailed(ctx, id, "a", "invalid_address")
		}
		return store.Release(ctx, id, "a")
	})
	for _, n := range c.Addrs() { // servers restarted or failed over have empty caches
		if err := redis.NewClient(&redis.Options{Addr: n}).ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}
	each("rearm", func(i int, id string) error {
		ok, err := store.Rearm(ctx, id)
		if err == nil && ok != (i%3 == 1) {
			err = fmt.Errorf("rearmed %v", ok)
		}
		return err
	})
	each("get", func(i int, id string) error {
		cl, err := store.Get(ctx, id)
		if err != nil {
			return err
		}
		if want := map[int]dedupe.State{0: dedupe.StateSent, 1: dedupe.StateNone, 2: dedupe.StateNone}[i%3]; cl.State != want {
			return fmt.Errorf("state %q, want %q", cl.State, want)
		}
		return nil
	})
	if err := dedupe.NewChecker(client, dedupe.Cluster, false, nil).Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
}

// TestSingleModeRefusesClusterNode: a cluster node reached as one server
// answers PING, and then every claim whose key lives on another node fails
// with MOVED for ever. The start-up check sees cluster_enabled and names the
// mode to use.
func TestSingleModeRefusesClusterNode(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0)
	ctx := context.Background()
	client := connect(t, dedupe.Target{URL: "redis://" + c.Addrs()[0]})
	if err := client.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	store := dedupe.NewRedis(client, dedupe.Options{})
	t.Cleanup(func() { _ = store.Close() })
	var moved bool
	for _, id := range spreadIDs(t, c, 30) {
		if _, err := store.Claim(ctx, id, "a", long); err != nil && strings.Contains(err.Error(), "MOVED") {
			moved = true
		}
	}
	if !moved {
		t.Fatal("no claim failed with MOVED; the test wants to show what the check prevents")
	}

	err := dedupe.NewChecker(client, dedupe.Single, false, nil).Check(ctx)
	var me *dedupe.ModeError
	if !errors.As(err, &me) || me.Found != dedupe.Cluster || !strings.Contains(err.Error(), "cluster mode") {
		t.Fatalf("Check: %v, want a *ModeError saying to use cluster mode", err)
	}
}

// TestCheckEveryClusterMaster: the policy and the room to write are checked
// on every master, not on whichever node a command happens to reach.
func TestCheckEveryClusterMaster(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0)
	_, client := clusterStore(t, c)
	ctx := context.Background()
	victim := c.MasterOf(dedupe.DefaultPrefix + "n0001")
	admin := redis.NewClient(&redis.Options{Addr: victim})
	t.Cleanup(func() { _ = admin.Close() })

	if err := admin.ConfigSet(ctx, "maxmemory-policy", "allkeys-lru").Err(); err != nil {
		t.Fatal(err)
	}
	err := dedupe.NewChecker(client, dedupe.Cluster, false, nil).Check(ctx)
	var ee *dedupe.EvictionError
	if !errors.As(err, &ee) || ee.Node != victim || ee.Policy != "allkeys-lru" {
		t.Fatalf("Check with one evicting master: %v, want an *EvictionError naming %s", err, victim)
	}
	if err := admin.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}

	chk := dedupe.NewChecker(client, dedupe.Cluster, false, nil)
	if err := chk.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if err := admin.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if err := chk.Ready(ctx); !errors.Is(err, dedupe.ErrOutOfMemory) || !strings.Contains(err.Error(), victim) {
		t.Fatalf("Ready with one master out of memory: %v, want ErrOutOfMemory naming %s", err, victim)
	}
	if err := admin.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if err := chk.Ready(ctx); err != nil {
		t.Fatalf("Ready after memory was freed: %v", err)
	}
}

// TestSentinel: claims go through the failover client to the master the
// sentinel names, and keep working, with their state, across a SENTINEL
// FAILOVER. A master name the sentinels do not know, a single-mode URL that
// reaches the sentinel, and a cluster-mode one that reaches a plain server,
// are refused at start.
func TestSentinel(t *testing.T) {
	s := redistest.StartSentinel(t)
	ctx := context.Background()
	client := connect(t, dedupe.Target{URL: s.URL(), Mode: dedupe.Sentinel, MasterName: redistest.MasterName})
	chk := dedupe.NewChecker(client, dedupe.Sentinel, false, nil)
	if err := chk.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	store := dedupe.NewRedis(client, dedupe.Options{})
	t.Cleanup(func() { _ = store.Close() })
	wantAcquired(t, mustClaim(t, store, "before", "a", long), "a")
	if err := store.MarkSent(ctx, "before", "a", "pm1"); err != nil {
		t.Fatal(err)
	}
	wantAcquired(t, mustClaim(t, store, "held", "a", long), "a")
	// WAIT: the replica has everything before it is promoted. WAIT covers
	// the writes of the connection it runs on, and the store wrote on
	// others (its pipelines): a write of this connection's own comes after
	// theirs in the replication stream, so once it is acknowledged theirs
	// are too. A bare WAIT returned at once and the replica was sometimes
	// promoted without "before" (make test, 22:40).
	failover, ok := client.(*redis.Client)
	if !ok {
		t.Fatalf("a Sentinel target connects with %T, want the failover *redis.Client", client)
	}
	conn := failover.Conn()
	defer conn.Close()
	if err := conn.Set(ctx, "redistest:wait", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := conn.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT: %d replicas acknowledged (%v), want 1", n, err)
	}

	from, to := s.Failover()
	t.Logf("failed over from %s to %s", from, to)
	var c dedupe.Claim
	poll.UntilNil(t, 20*time.Second, "a claim on the new master", func() error {
		var err error
		c, err = store.Claim(ctx, "after", "b", long)
		return err
	})
	wantAcquired(t, c, "b")
	wantFound(t, mustGet(t, store, "before"), dedupe.StateSent, "a")
	if c := mustClaim(t, store, "held", "b", long); c.Acquired || c.Owner != "a" {
		t.Fatalf("claim held across the failover: %+v, want still held by a", c)
	}
	poll.UntilNil(t, 10*time.Second, "ready after the failover", func() error { return chk.Ready(ctx) })

	admin := redis.NewClient(&redis.Options{Addr: to})
	t.Cleanup(func() { _ = admin.Close() })
	if err := admin.ConfigSet(ctx, "maxmemory-policy", "allkeys-lfu").Err(); err != nil {
		t.Fatal(err)
	}
	// Right after a failover some of the client's connections may still
	// reach the old master, now a replica: the check says so and is not
	// final, and once the client has followed it checks the new master.
	var ee *dedupe.EvictionError
	poll.UntilNil(t, 10*time.Second, "the check to reach the new master", func() error {
		if err := dedupe.NewChecker(client, dedupe.Sentinel, false, nil).Ready(ctx); !errors.As(err, &ee) || ee.Policy != "allkeys-lfu" {
			return fmt.Errorf("Ready on an evicting master: %v, want an *EvictionError", err)
		}
		return nil
	})

	wrong := connect(t, dedupe.Target{URL: s.URL(), Mode: dedupe.Sentinel, MasterName: "nosuch"})
	if err := dedupe.NewChecker(wrong, dedupe.Sentinel, false, nil).Check(ctx); !errors.Is(err, dedupe.ErrUnknownMaster) {
		t.Fatalf("Check with a master name the sentinels do not know: %v, want ErrUnknownMaster", err)
	}

	single := connect(t, dedupe.Target{URL: s.URL()})
	var me *dedupe.ModeError
	if err := dedupe.NewChecker(single, dedupe.Single, false, nil).Check(ctx); !errors.As(err, &me) || me.Found != dedupe.Sentinel {
		t.Fatalf("Check in single mode on a sentinel: %v, want a *ModeError", err)
	}
	cluster := connect(t, dedupe.Target{URL: "redis://" + to, Mode: dedupe.Cluster})
	if err := dedupe.NewChecker(cluster, dedupe.Cluster, false, nil).Check(ctx); !errors.As(err, &me) || me.Found != dedupe.Single {
		t.Fatalf("Check in cluster mode on a plain server: %v, want a *ModeError", err)
	}
}

// TestDocumentedACLUserOnCluster: in cluster mode the documented user also
// needs CLUSTER SLOTS, for the client's slot map.
func TestDocumentedACLUserOnCluster(t *testing.T) {
	user := append([]string{"--user", "herald", "on", ">pw", "~herald:*", "~rate:herald:*", "+cluster|slots"}, aclCommands...)
	c := redistest.StartCluster(t, 3, 0, user...)
	ctx := context.Background()
	client := connect(t, dedupe.Target{URL: c.URL(), Mode: dedupe.Cluster, Security: dedupe.Security{Username: "herald", Password: "pw"}})
	if err := dedupe.CheckAccess(ctx, client); err != nil {
		t.Fatalf("CheckAccess: %v", err)
	}
	chk := dedupe.NewChecker(client, dedupe.Cluster, false, nil)
	if err := chk.Ready(ctx); err != nil {
		t.Fatalf("checks: %v", err)
	}
	store := dedupe.NewRedis(client, dedupe.Options{})
	t.Cleanup(func() { _ = store.Close() })
	for _, id := range spreadIDs(t, c, 30) {
		wantAcquired(t, mustClaim(t, store, id, "a", long), "a")
	}
}

// TestClusterClientFollowsACrashedMaster: when a master dies and its replica
// is elected, the store reaches the new master within a few seconds of the
// election. go-redis alone learned of it only at its periodic slot-map
// reload (60s by default): a minute of "connection refused" for every claim
// on that master's slots after the cluster had already recovered.
func TestClusterClientFollowsACrashedMaster(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	store, _ := clusterStore(t, c)
	ctx := context.Background()
	wantAcquired(t, mustClaim(t, store, "held", "a", long), "a")
	c.WaitReplicated(dedupe.DefaultPrefix + "held") // the replica has the claim before its master dies
	from, to := c.Kill(dedupe.DefaultPrefix + "held")
	t0 := time.Now()
	var cl dedupe.Claim
	poll.UntilNil(t, 10*time.Second, "the store to reach the elected master", func() error {
		var err error
		cl, err = store.Get(ctx, "held")
		return err
	})
	t.Logf("master %s crashed; %s elected; the store reached it %v after the election", from, to, time.Since(t0).Round(time.Millisecond))
	if cl.State != dedupe.StateInFlight || cl.Owner != "a" {
		t.Fatalf("claim after the crash: %+v, want in flight, held by a", cl)
	}
}

// TestSentinelFollowsACrashedMaster: the failover client learns of the
// promoted replica from the sentinels and the store reaches it.
func TestSentinelFollowsACrashedMaster(t *testing.T) {
	s := redistest.StartSentinel(t)
	ctx := context.Background()
	client := connect(t, dedupe.Target{URL: s.URL(), Mode: dedupe.Sentinel, MasterName: redistest.MasterName})
	store := dedupe.NewRedis(client, dedupe.Options{})
	t.Cleanup(func() { _ = store.Close() })
	wantAcquired(t, mustClaim(t, store, "held", "a", long), "a")
	if err := client.Do(ctx, "WAIT", 1, 5000).Err(); err != nil { // the replica has the claim
		t.Fatal(err)
	}
	from, to := s.Kill()
	t0 := time.Now()
	var cl dedupe.Claim
	poll.UntilNil(t, 10*time.Second, "the store to reach the promoted replica", func() error {
		var err error
		cl, err = store.Get(ctx, "held")
		return err
	})
	t.Logf("master %s crashed; %s promoted; the store reached it %v after", from, to, time.Since(t0).Round(time.Millisecond))
	if cl.State != dedupe.StateInFlight || cl.Owner != "a" {
		t.Fatalf("claim after the crash: %+v, want in flight, held by a", cl)
	}
}

// connect makes the client for target as the workers do, closed when the
// test ends.
func connect(tb testing.TB, target dedupe.Target) redis.UniversalClient {
	tb.Helper()
	client, err := dedupe.Connect(target)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = client.Close() })
	return client
}
