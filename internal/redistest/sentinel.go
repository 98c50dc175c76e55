package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// MasterName is the name the sentinels of StartSentinel monitor.
const MasterName = "mymaster"

// Sentinels is a master, one replica and one sentinel (quorum 1), each a
// redis-server on a loopback TCP port, with persistence off.
type Sentinels struct {
	tb       testing.TB
	master   *tcpServer
	replica  *tcpServer
	sentinel *tcpServer
}

// StartSentinel starts the deployment, waits until the sentinel knows the
// replica (so that a failover can happen), and stops it when the test ends.
// extra are more redis-server arguments for the master and the replica.
func StartSentinel(tb testing.TB, extra ...string) *Sentinels {
	tb.Helper()
	if _, err := exec.LookPath(Binary); err != nil {
		tb.Fatalf("redistest: %s not found on PATH (%v): run `make test`, which installs it", Binary, err)
	}
	dir := tb.TempDir()
	s := &Sentinels{tb: tb}
	tb.Cleanup(s.close)
	data := func(name string, more ...string) func(int) (string, []string) {
		return func(port int) (string, []string) {
			args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
				"--daemonize", "no", "--loglevel", "warning", "--repl-diskless-sync-delay", "0"}
			return filepath.Join(dir, name), append(append(args, more...), extra...)
		}
	}
	var err error
	if s.master, err = startOnFreePort(data("master")); err != nil {
		tb.Fatalf("%v", err)
	}
	masterPort := strconv.Itoa(s.master.port)
	if s.replica, err = startOnFreePort(data("replica", "--replicaof", "127.0.0.1", masterPort)); err != nil {
		tb.Fatalf("%v", err)
	}
	// A sentinel rewrites its configuration file, so it needs one of its own.
	sdir := filepath.Join(dir, "sentinel")
	ms := strconv.Itoa(int(NodeTimeout / time.Millisecond))
	s.sentinel, err = startOnFreePort(func(port int) (string, []string) {
		conf := filepath.Join(sdir, "sentinel.conf")
		cfg := strings.Join([]string{
			"port " + strconv.Itoa(port),
			"bind 127.0.0.1",
			"daemonize no",
			"loglevel warning",
			"sentinel monitor " + MasterName + " 127.0.0.1 " + masterPort + " 1",
			"sentinel down-after-milliseconds " + MasterName + " " + ms,
			"sentinel failover-timeout " + MasterName + " 10000",
			"",
		}, "\n")
		if err := os.MkdirAll(sdir, 0o700); err != nil {
			tb.Fatalf("redistest: %v", err)
		}
		if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
			tb.Fatalf("redistest: %v", err)
		}
		return sdir, []string{conf, "--sentinel"}
	})
	if err != nil {
		tb.Fatalf("%v", err)
	}
	replicaPort := strconv.Itoa(s.replica.port)
	err = waitFor(convergeTimeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		sc := redis.NewSentinelClient(&redis.Options{Addr: s.sentinel.addr()})
		defer sc.Close()
		replicas, err := sc.Replicas(ctx, MasterName).Result()
		if err != nil {
			return err
		}
		for _, r := range replicas {
			if r["port"] == replicaPort && !strings.Contains(r["flags"], "disconnected") && r["master-link-status"] == "ok" {
				return nil
			}
		}
		return fmt.Errorf("sentinel does not know the replica yet: %v", replicas)
	})
	if err != nil {
		tb.Fatalf("redistest: sentinel: %v", err)
	}
	return s
}

// URL returns the sentinel's URL, as HERALD_REDIS_URL holds it in
// sentinel mode.
func (s *Sentinels) URL() string { return "redis://" + s.sentinel.addr() }

// Master returns the address the sentinel names as the master.
func (s *Sentinels) Master() string {
	s.tb.Helper()
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.sentinel.addr()})
	defer sc.Close()
	a, err := sc.GetMasterAddrByName(context.Background(), MasterName).Result()
	if err != nil {
		s.tb.Fatalf("redistest: SENTINEL GET-MASTER-ADDR-BY-NAME: %v", err)
	}
	return a[0] + ":" + a[1]
}

// Failover runs SENTINEL FAILOVER and waits until the sentinel names the
// other server as master and that server says it is one. It returns the
// old and new masters' addresses.
func (s *Sentinels) Failover() (from, to string) {
	s.tb.Helper()
	from = s.Master()
	to = s.replica.addr()
	if from == to {
		to = s.master.addr()
	}
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.sentinel.addr()})
	defer sc.Close()
	if err := sc.Failover(context.Background(), MasterName).Err(); err != nil {
		s.tb.Fatalf("redistest: SENTINEL FAILOVER: %v", err)
	}
	err := s.waitPromoted(to)
	if err != nil {
		s.tb.Fatalf("redistest: failover: %v", err)
	}
	return from, to
}

// Kill SIGKILLs the master, as a crash would, and waits until the sentinel
// has promoted the replica (after NodeTimeout of silence). Writes the
// replica had not received are lost. It returns the dead and the new
// master's addresses.
func (s *Sentinels) Kill() (from, to string) {
	s.tb.Helper()
	from = s.Master()
	dead, next := s.master, s.replica
	if from == s.replica.addr() {
		dead, next = s.replica, s.master
	}
	dead.stop()
	to = next.addr()
	err := s.waitPromoted(to)
	if err != nil {
		s.tb.Fatalf("redistest: failover after a crash: %v", err)
	}
	return from, to
}

// waitPromoted waits until the sentinel names to as the master and to says
// it is one.
func (s *Sentinels) waitPromoted(to string) error {
	return waitFor(convergeTimeout, func() error {
		if got := s.Master(); got != to {
			return fmt.Errorf("sentinel still names %s", got)
		}
		n := node(to)
		defer n.Close()
		info, err := n.Info(context.Background(), "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "role:master") {
			return fmt.Errorf("%s is not master yet", to)
		}
		return nil
	})
}

func (s *Sentinels) close() {
	for _, p := range []*tcpServer{s.sentinel, s.replica, s.master} {
		if p != nil {
			p.stop()
		}
	}
}
