package dedupe

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// What herald needs of its Redis beyond answering, checked by a Checker:
//
//   - The deployment the client was made for. A cluster node reached as a
//     single server answers PING but refuses every claim with MOVED, for
//     ever; a sentinel answers PING but stores nothing.
//   - maxmemory-policy noeviction, on every master. An evicting policy
//     under memory pressure deletes sent keys (a repeated event is then
//     delivered again) and can delete a whole channel's suppression list
//     (one hash with no TTL), silently. Only noeviction turns memory
//     pressure into errors, which herald waits out.
//   - Room to write. Under noeviction a full Redis refuses every write
//     with OOM while PING still answers, so readiness probes a write.

// ModeError is a Redis deployed differently from the client's Mode.
type ModeError struct {
	Want  Mode   // the client's mode
	Found Mode   // what the server is
	Node  string // the address that said so
}

func (e *ModeError) Error() string {
	return e.What() + "; use " + string(e.Found) + " mode"
}

// What says what the server is and why the client's mode fails on it.
func (e *ModeError) What() string {
	switch e.Found {
	case Cluster:
		return fmt.Sprintf("redis at %s is a Redis Cluster node (cluster_enabled:1), where a %s-mode client fails every claim with MOVED", e.Node, e.Want)
	case Sentinel:
		return fmt.Sprintf("redis at %s is a Sentinel, which stores no keys", e.Node)
	}
	return fmt.Sprintf("redis at %s is not a Redis Cluster node (cluster support disabled)", e.Node)
}

// EvictionError is a Redis whose maxmemory-policy may evict herald's keys.
type EvictionError struct {
	Policy string // maxmemory_policy as INFO memory reports it
	Node   string
}

func (e *EvictionError) Error() string {
	return fmt.Sprintf("redis at %s has maxmemory-policy %s, which evicts keys under memory pressure: sent keys (so repeated events are delivered again) and whole suppression lists; set maxmemory-policy noeviction", e.Node, e.Policy)
}

// ErrOutOfMemory is a Redis that refuses writes because it has reached
// maxmemory (the OOM reply): claims and outcomes cannot be recorded.
var ErrOutOfMemory = errors.New("redis is out of memory (used_memory above maxmemory): it refuses writes with OOM, so no claim or outcome can be recorded")

// ErrUnknownMaster is a Sentinel deployment whose sentinels all answer that
// they monitor no master by the client's master name.
var ErrUnknownMaster = errors.New("redis: the sentinels monitor no master by that name")

// unknownMaster reports whether err is go-redis's failover client giving up
// because every sentinel answered nil for the master's address.
func unknownMaster(err error) bool {
	j, ok := errors.Unwrap(err).(interface{ Unwrap() []error })
	if !ok || len(j.Unwrap()) == 0 || !strings.Contains(err.Error(), "sentinels") {
		return false
	}
	for _, e := range j.Unwrap() {
		if !errors.Is(e, redis.Nil) {
			return false
		}
	}
	return true
}

// Checker holds herald's checks of its Redis: Check at start, Ready for
// /readyz. Its methods are safe for concurrent use.
type Checker struct {
	client        redis.UniversalClient
	mode          Mode
	allowEviction bool
	onUnsafe      func(*EvictionError)

	mu       sync.Mutex
	verdict  error // a configuration problem found by a completed check
	complete bool  // the checks ran against a server that answered
	unsafe   bool  // onUnsafe was last told of an evicting policy
}

// NewChecker returns the checks for client, made by Connect for mode. With
// allowEviction an evicting policy is reported to onUnsafe (if not nil)
// instead of failing the check, and onUnsafe(nil) reports that every master
// is back on noeviction; it is called when that changes, not on every
// probe.
func NewChecker(client redis.UniversalClient, mode Mode, allowEviction bool, onUnsafe func(*EvictionError)) *Checker {
	if mode == "" {
		mode = Single
	}
	return &Checker{client: client, mode: mode, allowEviction: allowEviction, onUnsafe: onUnsafe}
}

// Check inspects the deployment and maxmemory-policy and returns a
// *ModeError, an *EvictionError, ErrUnknownMaster, or an access error when Redis answers but
// is not one herald can keep its promises on: configuration that waiting
// will not fix. A Redis that cannot be reached is not an error here (the
// worker starts unready); the checks run again on every Ready until one
// completes. After a completed check Check returns its verdict and does not
// ask Redis again.
func (c *Checker) Check(ctx context.Context) error {
	verdict, _ := c.check(ctx)
	return verdict
}

// check returns the verdict, and the error that kept the checks from
// completing.
func (c *Checker) check(ctx context.Context) (verdict, unreachable error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.complete {
		return c.verdict, nil
	}
	nodes, err := c.inspect(ctx)
	if c.mode == Sentinel && unknownMaster(err) {
		err = ErrUnknownMaster
	}
	if err != nil {
		var me *ModeError
		if errors.As(err, &me) || errors.Is(err, ErrUnknownMaster) || accessRefused(err) {
			c.complete, c.verdict = true, err
			return err, nil
		}
		return nil, err
	}
	c.complete = true
	for _, n := range nodes {
		if n.policy == "" || n.policy == "noeviction" {
			continue // a proxy that hides INFO memory: nothing to go on
		}
		e := &EvictionError{Policy: n.policy, Node: n.addr}
		if !c.allowEviction {
			c.verdict = e
			return e, nil
		}
		c.report(e)
	}
	return nil, nil
}

// report tells onUnsafe of a change between an evicting policy (e) and
// none (nil); the caller holds c.mu.
func (c *Checker) report(e *EvictionError) {
	if (e != nil) == c.unsafe {
		return
	}
	c.unsafe = e != nil
	if c.onUnsafe != nil {
		c.onUnsafe(e)
	}
}

// Verdict returns what the last completed check found, without asking
// Redis: nil when no check has completed or it passed.
func (c *Checker) Verdict() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.verdict
}

// Ready is the readiness probe: nil when the checks have passed, every
// master accepts writes, and no master's maxmemory-policy has been changed
// to an evicting one since (unless allowed; then onUnsafe hears of it).
// PING is not enough: a Redis at maxmemory under noeviction answers PING
// and refuses every write.
func (c *Checker) Ready(ctx context.Context) error {
	verdict, unreachable := c.check(ctx)
	if verdict != nil {
		return verdict
	}
	if unreachable != nil {
		return unreachable
	}
	var mu sync.Mutex
	var evicting *EvictionError
	err := c.eachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		if err := writable(ctx, n, c.label(n)); err != nil {
			return err
		}
		info, err := readInfo(ctx, n, "memory")
		if err != nil {
			return err
		}
		if p := info["maxmemory_policy"]; p != "" && p != "noeviction" {
			mu.Lock()
			evicting = &EvictionError{Policy: p, Node: c.label(n)}
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.allowEviction {
		if evicting != nil {
			return evicting // changed since start; ready again once it is changed back
		}
		return nil
	}
	c.report(evicting)
	return nil
}

// label names a master in messages.
func (c *Checker) label(n *redis.Client) string {
	if c.mode == Sentinel {
		return "the sentinels' master" // a failover client's Addr is a placeholder
	}
	return n.Options().Addr
}

// node is one master as INFO describes it.
type node struct {
	addr, policy string
}

// inspect reads every master's INFO and returns a *ModeError when the
// deployment is not the client's mode.
func (c *Checker) inspect(ctx context.Context) ([]node, error) {
	var mu sync.Mutex
	var nodes []node
	err := c.eachMaster(ctx, func(ctx context.Context, cl *redis.Client) error {
		info, err := readInfo(ctx, cl, "")
		if err != nil {
			return err
		}
		addr := c.label(cl)
		switch {
		case c.mode != Cluster && (info["redis_mode"] == "cluster" || info["cluster_enabled"] == "1"):
			return &ModeError{Want: c.mode, Found: Cluster, Node: addr}
		case info["redis_mode"] == "sentinel":
			return &ModeError{Want: c.mode, Found: Sentinel, Node: addr}
		case info["role"] == "slave":
			// Every write would fail with READONLY. Not final: a client
			// that has not yet followed a failover, or a DNS name between
			// primaries, reaches a replica for a moment; Ready reports it
			// and the checks run again.
			return fmt.Errorf("redis at %s is a read-only replica, not a master", addr)
		}
		mu.Lock()
		nodes = append(nodes, node{addr: addr, policy: info["maxmemory_policy"]})
		mu.Unlock()
		return nil
	})
	if cc, ok := c.client.(*redis.ClusterClient); ok && err != nil && strings.Contains(err.Error(), "cluster support disabled") {
		return nil, &ModeError{Want: Cluster, Found: Single, Node: strings.Join(cc.Options().Addrs, ",")}
	}
	return nodes, err
}

// eachMaster runs fn on every master: each of a cluster's, the one a
// Sentinel names, or the single server.
func (c *Checker) eachMaster(ctx context.Context, fn func(context.Context, *redis.Client) error) error {
	switch cl := c.client.(type) {
	case *redis.ClusterClient:
		return cl.ForEachMaster(ctx, fn)
	case *redis.Client:
		return fn(ctx, cl)
	}
	return fmt.Errorf("redis: unexpected client %T", c.client)
}

// probeScript declares itself (Redis 7 shebang) as a script that may write,
// so Redis refuses it with OOM before running it when it is at maxmemory,
// exactly as it refuses herald's claims; it touches no key, so it runs on
// any node of a cluster and adds nothing to memory.
const probeScript = "#!lua\nreturn 1"

// writable returns ErrOutOfMemory when n, called label in messages,
// refuses writes for lack of memory.
func writable(ctx context.Context, n *redis.Client, label string) error {
	err := n.Eval(ctx, probeScript, nil).Err()
	switch {
	case err == nil:
		return nil
	case redis.HasErrorPrefix(err, "OOM"):
		return fmt.Errorf("%s: %w", label, ErrOutOfMemory)
	case !strings.Contains(err.Error(), "compiling script"):
		return err
	}
	// Redis before 7 has no shebang: compare memory as its eviction code
	// does, leaving out the buffers it does not count.
	info, err := readInfo(ctx, n, "memory")
	if err != nil {
		return err
	}
	limit, _ := strconv.ParseInt(info["maxmemory"], 10, 64)
	used, _ := strconv.ParseInt(info["used_memory"], 10, 64)
	uncounted, _ := strconv.ParseInt(info["mem_not_counted_for_evict"], 10, 64)
	if limit > 0 && used-uncounted > limit {
		return fmt.Errorf("%s: %w", label, ErrOutOfMemory)
	}
	return nil
}

// readInfo returns INFO section (the default sections for "") as fields.
func readInfo(ctx context.Context, c *redis.Client, section string) (map[string]string, error) {
	var s string
	var err error
	if section == "" {
		s, err = c.Info(ctx).Result()
	} else {
		s, err = c.Info(ctx, section).Result()
	}
	if err != nil {
		return nil, err
	}
	return parseInfo(s), nil
}

// parseInfo reads INFO's "field:value" lines; sections and comments start
// with '#'.
func parseInfo(s string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = v
		}
	}
	return m
}
