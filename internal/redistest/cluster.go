package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// NodeTimeout is the cluster-node-timeout and Sentinel down-after of the
// deployments started here: short, so failovers take a second or two.
const NodeTimeout = time.Second

// convergeTimeout bounds how long a cluster or Sentinel deployment may take
// to agree on its topology after a start or failover.
const convergeTimeout = 30 * time.Second

// tcpServer is one redis-server process on a loopback TCP port.
type tcpServer struct {
	port   int
	cmd    *exec.Cmd
	exited chan struct{}
	out    *syncBuffer
}

func (p *tcpServer) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)) }

// startTCP starts redis-server in dir on port with args and waits for PING.
func startTCP(dir string, port int, args ...string) (*tcpServer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	out := &syncBuffer{}
	cmd := exec.Command(Binary, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, out, out
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("redistest: starting %s: %w", Binary, err)
	}
	p := &tcpServer{port: port, cmd: cmd, exited: make(chan struct{}), out: out}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	if err := waitReady("tcp", p.addr(), p.exited); err != nil {
		p.stop()
		return nil, fmt.Errorf("redistest: %s on %s: %w; output:\n%s", Binary, p.addr(), err, out.String())
	}
	return p, nil
}

func (p *tcpServer) stop() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// startOnFreePort starts a server on a free port (with its cluster bus
// port free too); spec gives its directory and arguments for the port. Tests
// of other packages pick ports at the same time, so a port taken between
// the pick and the bind is picked again.
func startOnFreePort(spec func(port int) (dir string, args []string)) (*tcpServer, error) {
	var err error
	for range 5 {
		var ports []int
		if ports, err = freePorts(1); err != nil {
			return nil, err
		}
		dir, args := spec(ports[0])
		var s *tcpServer
		if s, err = startTCP(dir, ports[0], args...); err == nil {
			return s, nil
		}
		if !strings.Contains(err.Error(), "Address already in use") {
			return nil, err
		}
	}
	return nil, err
}

// freePorts returns n loopback ports that are free, each with its cluster
// bus port (port+10000) free as well. Another process may take one before
// the server binds it; the server then fails to start, loudly.
func freePorts(n int) ([]int, error) {
	var ports []int
	var hold []net.Listener
	defer func() {
		for _, l := range hold {
			_ = l.Close()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		hold = append(hold, l)
		port := l.Addr().(*net.TCPAddr).Port
		if port+10000 > 65535 {
			continue
		}
		bus, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+10000)))
		if err != nil {
			continue
		}
		hold = append(hold, bus)
		ports = append(ports, port)
	}
	return ports, nil
}

// Cluster is a Redis Cluster of redis-server processes on loopback TCP
// ports, with persistence off and a short NodeTimeout.
type Cluster struct {
	tb       testing.TB
	nodes    []*tcpServer
	replicas int             // per master
	dead     map[string]bool // nodes killed by Kill

	mu     sync.Mutex
	client *redis.ClusterClient
}

// StartCluster starts masters×(1+replicas) redis-servers, joins them with
// `redis-cli --cluster create`, and waits until every node reports the
// cluster ok. The cluster stops when the test ends. extra are more
// redis-server arguments for every node (for example a maxmemory-policy).
func StartCluster(tb testing.TB, masters, replicas int, extra ...string) *Cluster {
	tb.Helper()
	for _, bin := range []string{Binary, "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			tb.Fatalf("redistest: %s not found on PATH (%v): run `make test`, which installs it", bin, err)
		}
	}
	dir := tb.TempDir()
	c := &Cluster{tb: tb, replicas: replicas}
	tb.Cleanup(c.close)
	for range masters * (1 + replicas) {
		s, err := startOnFreePort(func(port int) (string, []string) {
			p := strconv.Itoa(port)
			return filepath.Join(dir, p), append([]string{
				"--port", p, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
				"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
				"--cluster-node-timeout", strconv.Itoa(int(NodeTimeout / time.Millisecond)),
				"--daemonize", "no", "--loglevel", "warning",
				// A replica's first sync otherwise waits 5s for others to
				// share it, and CLUSTER SLOTS lists a replica only once it
				// reports a replication offset, which takes the master's
				// first PING (every 10s by default) when nothing is written.
				"--repl-diskless-sync-delay", "0", "--repl-ping-replica-period", "1",
			}, extra...)
		})
		if err != nil {
			tb.Fatalf("%v", err)
		}
		c.nodes = append(c.nodes, s)
	}
	create := []string{"--cluster", "create"}
	for _, s := range c.nodes {
		create = append(create, s.addr())
	}
	create = append(create, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.Command("redis-cli", create...).CombinedOutput(); err != nil {
		tb.Fatalf("redistest: redis-cli %s: %v\n%s", strings.Join(create, " "), err, out)
	}
	c.waitConverged(func(ctx context.Context) error { return nil })
	return c
}

// Addrs returns every node's host:port.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, s := range c.nodes {
		out = append(out, s.addr())
	}
	return out
}

// URL returns the seed URLs of every node, comma-separated, as
// HERALD_REDIS_URL holds them in cluster mode.
func (c *Cluster) URL() string {
	var out []string
	for _, a := range c.Addrs() {
		out = append(out, "redis://"+a)
	}
	return strings.Join(out, ",")
}

// Client returns a cluster client shared by callers, closed with the cluster.
func (c *Cluster) Client() *redis.ClusterClient {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client == nil {
		c.client = redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	}
	return c.client
}

// live returns the address of a node that has not been killed.
func (c *Cluster) live() string {
	for _, s := range c.nodes {
		if !c.dead[s.addr()] {
			return s.addr()
		}
	}
	c.tb.Fatalf("redistest: every node is dead")
	return ""
}

// node returns a plain client of one node; the caller closes it.
func node(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
}

// MasterOf returns the address of the master that serves key's slot.
func (c *Cluster) MasterOf(key string) string {
	c.tb.Helper()
	ctx := context.Background()
	n := node(c.live())
	defer n.Close()
	slot64, err := n.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		c.tb.Fatalf("redistest: CLUSTER KEYSLOT: %v", err)
	}
	slot := int(slot64)
	shards, err := n.ClusterSlots(ctx).Result()
	if err != nil {
		c.tb.Fatalf("redistest: CLUSTER SLOTS: %v", err)
	}
	for _, s := range shards {
		if slot >= s.Start && slot <= s.End {
			return nodeAddr(s.Nodes[0])
		}
	}
	c.tb.Fatalf("redistest: no master serves slot %d", slot)
	return ""
}

// Failover promotes a replica of the master serving key's slot with
// CLUSTER FAILOVER (the replica first catches up with its master, so no
// acknowledged write is lost) and waits until every node agrees. It
// returns the old and the new master's addresses.
func (c *Cluster) Failover(key string) (from, to string) {
	c.tb.Helper()
	ctx := context.Background()
	from = c.MasterOf(key)
	shards, err := c.slots(ctx, from)
	if err != nil {
		c.tb.Fatalf("redistest: CLUSTER SLOTS: %v", err)
	}
	for _, s := range shards {
		if nodeAddr(s.Nodes[0]) == from && len(s.Nodes) > 1 {
			to = nodeAddr(s.Nodes[1])
		}
	}
	if to == "" {
		c.tb.Fatalf("redistest: master %s has no replica to fail over to (start the cluster with replicas)", from)
	}
	r := node(to)
	defer r.Close()
	if err := r.ClusterFailover(ctx).Err(); err != nil {
		c.tb.Fatalf("redistest: CLUSTER FAILOVER on %s: %v", to, err)
	}
	c.waitConverged(func(ctx context.Context) error {
		if got := c.MasterOf(key); got != to {
			return fmt.Errorf("slot of %q still served by %s", key, got)
		}
		return nil
	})
	return from, to
}

// WaitReplicated waits until every replica of the master serving key's
// slot has received all the master's writes so far.
func (c *Cluster) WaitReplicated(key string) {
	c.tb.Helper()
	n := node(c.MasterOf(key))
	defer n.Close()
	err := waitFor(convergeTimeout, func() error {
		s, err := n.Info(context.Background(), "replication").Result()
		if err != nil {
			return err
		}
		info := map[string]string{}
		for _, line := range strings.Split(s, "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
				info[k] = v
			}
		}
		for i := 0; i < c.replicas; i++ {
			if !strings.Contains(info[fmt.Sprintf("slave%d", i)], "offset="+info["master_repl_offset"]+",") {
				return fmt.Errorf("replica %d at %q, master at %s", i, info[fmt.Sprintf("slave%d", i)], info["master_repl_offset"])
			}
		}
		return nil
	})
	if err != nil {
		c.tb.Fatalf("redistest: replication: %v", err)
	}
}

// Kill SIGKILLs the master serving key's slot, as a crash would, and waits
// until its replica has taken over (after NodeTimeout and an election) and
// the surviving nodes agree. Writes the replica had not received when the
// master died are lost: Redis replicates asynchronously. It returns the
// dead and the new master's addresses.
func (c *Cluster) Kill(key string) (from, to string) {
	c.tb.Helper()
	from = c.MasterOf(key)
	for _, s := range c.nodes {
		if s.addr() == from {
			s.stop()
		}
	}
	if c.dead == nil {
		c.dead = map[string]bool{}
	}
	c.dead[from] = true
	c.waitConverged(func(ctx context.Context) error {
		n := node(c.live())
		defer n.Close()
		slot, err := n.ClusterKeySlot(ctx, key).Result()
		if err != nil {
			return err
		}
		slots, err := n.ClusterSlots(ctx).Result()
		if err != nil {
			return err
		}
		for _, r := range slots {
			if int64(r.Start) <= slot && slot <= int64(r.End) && r.Nodes[0].Addr != from {
				to = r.Nodes[0].Addr
				return nil
			}
		}
		return fmt.Errorf("slot of %q not yet taken over from %s", key, from)
	})
	return from, to
}

func (c *Cluster) slots(ctx context.Context, addr string) ([]redis.ClusterSlot, error) {
	n := node(addr)
	defer n.Close()
	return n.ClusterSlots(ctx).Result()
}

func nodeAddr(n redis.ClusterNode) string { return n.Addr }

// waitConverged waits until every node reports cluster_state:ok with all
// slots assigned, all nodes report the same slot map, and more holds.
func (c *Cluster) waitConverged(more func(context.Context) error) {
	c.tb.Helper()
	err := waitFor(convergeTimeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var want string
		for _, s := range c.nodes {
			if c.dead[s.addr()] {
				continue
			}
			n := node(s.addr())
			info, err := n.ClusterInfo(ctx).Result()
			if err == nil && (!strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_assigned:16384")) {
				err = errors.New("cluster not ok")
			}
			var slots []redis.ClusterSlot
			if err == nil {
				slots, err = n.ClusterSlots(ctx).Result()
			}
			n.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", s.addr(), err)
			}
			for _, r := range slots {
				if len(c.dead) == 0 && len(r.Nodes) != 1+c.replicas {
					err = fmt.Errorf("slots %d-%d have %d replicas, want %d", r.Start, r.End, len(r.Nodes)-1, c.replicas)
				}
			}
			if err != nil {
				return fmt.Errorf("%s: %w", s.addr(), err)
			}
			if got := slotMap(slots); want == "" {
				want = got
			} else if got != want {
				return fmt.Errorf("%s disagrees on the slot map", s.addr())
			}
		}
		return more(ctx)
	})
	if err != nil {
		c.tb.Fatalf("redistest: cluster did not converge: %v", err)
	}
}

// slotMap is a comparable form of CLUSTER SLOTS: ranges and their masters.
func slotMap(slots []redis.ClusterSlot) string {
	var b strings.Builder
	m := map[int]string{}
	for _, s := range slots {
		m[s.Start] = fmt.Sprintf("%d-%d@%s", s.Start, s.End, s.Nodes[0].Addr)
	}
	for i := 0; i <= 16383; i++ {
		if v, ok := m[i]; ok {
			b.WriteString(v + " ")
		}
	}
	return b.String()
}

func (c *Cluster) close() {
	c.mu.Lock()
	if c.client != nil {
		_ = c.client.Close()
	}
	c.mu.Unlock()
	for _, s := range c.nodes {
		s.stop()
	}
}

// waitFor polls cond, backing off from 10ms to 100ms, until it returns nil
// or timeout passes; it returns the last error then.
func waitFor(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	backoff := 10 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(backoff)
		backoff = min(backoff*2, 100*time.Millisecond)
	}
}
