package config

import (
	"fmt"
	"net/url"
	"strings"
)

// IdempotencyMode switches the idempotency keys on or off. Off exists only
// to measure what the keys are worth (the chaos test and benchmarks run
// the same workload both ways); production runs on.
type IdempotencyMode string

const (
	// IdempotencyOn claims a Redis key before every send (docs/contracts.md §3).
	IdempotencyOn IdempotencyMode = "on"
	// IdempotencyOff sends without claiming: every redelivery after a
	// crash or rebalance is delivered again.
	IdempotencyOff IdempotencyMode = "off"
)

// RedisMode is how herald reaches Redis (HERALD_REDIS_MODE).
type RedisMode string

const (
	// RedisSingle is one server, or a primary behind one address.
	RedisSingle RedisMode = "single"
	// RedisCluster is Redis Cluster: the URLs are seed nodes.
	RedisCluster RedisMode = "cluster"
	// RedisSentinel is a master found through Sentinel: the URLs are
	// sentinels.
	RedisSentinel RedisMode = "sentinel"
)

// redisModeRule checks HERALD_REDIS_URL against the mode: one URL for a
// single server; for a cluster or sentinels, network URLs (cluster nodes and
// sentinels announce host:port, never a socket) that differ only in host
// and port, because one set of credentials, TLS settings and client options
// serves every node.
func redisModeRule(c *Config) error {
	if c.RedisURL == "" {
		return nil // HERALD_REDIS_URL's own check reports it missing
	}
	urls := splitURLs(c.RedisURL)
	if c.RedisMode == RedisSingle {
		if len(urls) > 1 {
			return fmt.Errorf("is single but HERALD_REDIS_URL lists %d URLs; set HERALD_REDIS_MODE=cluster or sentinel, or give one URL", len(urls))
		}
		return nil
	}
	var first *url.URL
	for i, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			return nil // HERALD_REDIS_URL's own check reports it
		}
		if u.Scheme == "unix" {
			return fmt.Errorf("is %s but HERALD_REDIS_URL entry %d is a unix:// socket; list the nodes as redis:// or rediss://host:port", c.RedisMode, i+1)
		}
		if c.RedisMode == RedisCluster && strings.Trim(u.Path, "/") != "" && strings.Trim(u.Path, "/") != "0" {
			return fmt.Errorf("is cluster but HERALD_REDIS_URL entry %d selects a database; Redis Cluster has only database 0", i+1)
		}
		if first == nil {
			first = u
			continue
		}
		if u.Scheme != first.Scheme || u.User.String() != first.User.String() || u.Path != first.Path || u.RawQuery != first.RawQuery {
			return fmt.Errorf("is %s but HERALD_REDIS_URL entry %d differs from the first in more than host and port (scheme, credentials, database and options must be the same)", c.RedisMode, i+1)
		}
	}
	return nil
}
