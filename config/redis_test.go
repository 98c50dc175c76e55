package config_test

import (
	"strings"
	"testing"

	"github.com/gymhq/herald/config"
)

// TestRedisModes: HERALD_REDIS_URL, _MODE and _MASTER_NAME together; bad
// combinations stop the process with one line naming the variable.
func TestRedisModes(t *testing.T) {
	const seeds = "redis://:pw@r0:6379,redis://:pw@r1:6379, redis://:pw@r2:6379"
	good := []struct {
		name string
		kv   []string
		mode config.RedisMode
	}{
		{"single by default", nil, config.RedisSingle},
		{"cluster seeds", []string{"HERALD_REDIS_URL", seeds, "HERALD_REDIS_MODE", "cluster"}, config.RedisCluster},
		{"one cluster seed", []string{"HERALD_REDIS_URL", "rediss://r0:6379", "HERALD_REDIS_MODE", "cluster"}, config.RedisCluster},
		{"sentinels", []string{"HERALD_REDIS_URL", "redis://s0:26379,redis://s1:26379", "HERALD_REDIS_MODE", "sentinel", "HERALD_REDIS_MASTER_NAME", "mymaster"}, config.RedisSentinel},
	}
	for _, tt := range good {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Load(nil, fullEnv(t).with(tt.kv...).get)
			if err != nil {
				t.Fatal(err)
			}
			if c.RedisMode != tt.mode {
				t.Errorf("mode %q, want %q", c.RedisMode, tt.mode)
			}
		})
	}

	bad := []struct {
		name     string
		kv       []string
		variable string
		want     string
	}{
		{"unknown mode", []string{"HERALD_REDIS_MODE", "replicated"}, "HERALD_REDIS_MODE", `"replicated" is not one of single, cluster, sentinel`},
		{"a list in single mode", []string{"HERALD_REDIS_URL", seeds}, "HERALD_REDIS_MODE", "lists 3 URLs; set HERALD_REDIS_MODE=cluster or sentinel"},
		{"an empty seed", []string{"HERALD_REDIS_URL", "redis://r0,,redis://r2", "HERALD_REDIS_MODE", "cluster"}, "HERALD_REDIS_URL", "entry 2 of the comma-separated list is empty"},
		{"a bad seed", []string{"HERALD_REDIS_URL", "redis://r0,http://r1", "HERALD_REDIS_MODE", "cluster"}, "HERALD_REDIS_URL", `entry 2: scheme "http"`},
		{"a socket seed", []string{"HERALD_REDIS_URL", "unix:///r.sock", "HERALD_REDIS_MODE", "cluster"}, "HERALD_REDIS_MODE", "unix:// socket"},
		{"a cluster database", []string{"HERALD_REDIS_URL", "redis://r0/2", "HERALD_REDIS_MODE", "cluster"}, "HERALD_REDIS_MODE", "only database 0"},
		{"seeds with other credentials", []string{"HERALD_REDIS_URL", "redis://:a@r0,redis://:b@r1", "HERALD_REDIS_MODE", "cluster"}, "HERALD_REDIS_MODE", "entry 2 differs from the first"},
		{"seeds with and without TLS", []string{"HERALD_REDIS_URL", "rediss://r0,redis://r1", "HERALD_REDIS_MODE", "cluster"}, "HERALD_REDIS_MODE", "entry 2 differs from the first"},
		{"sentinel without a master", []string{"HERALD_REDIS_MODE", "sentinel"}, "HERALD_REDIS_MASTER_NAME", "required with HERALD_REDIS_MODE=sentinel"},
		{"a master name without sentinel", []string{"HERALD_REDIS_MASTER_NAME", "mymaster"}, "HERALD_REDIS_MASTER_NAME", "HERALD_REDIS_MODE is single, not sentinel"},
		{"allow eviction true", []string{"HERALD_REDIS_ALLOW_EVICTION", "true"}, "HERALD_REDIS_ALLOW_EVICTION", `"true" is not one of off, on`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(nil, fullEnv(t).with(tt.kv...).get)
			wantError(t, err, tt.variable, tt.want)
			if strings.Contains(err.Error(), ":a@") || strings.Contains(err.Error(), "pw") {
				t.Errorf("error %q shows a password", err)
			}
		})
	}
}

// TestRedisSeedsRedacted: every seed's password is hidden.
func TestRedisSeedsRedacted(t *testing.T) {
	c, err := config.Load(nil, fullEnv(t).with("HERALD_REDIS_URL", "redis://u:s3cret@r0:6379,redis://u:s3cret@r1:6379", "HERALD_REDIS_MODE", "cluster").get)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Redacted()["HERALD_REDIS_URL"], "redis://u:***@r0:6379,redis://u:***@r1:6379"; got != want {
		t.Errorf("Redacted() = %q, want %q", got, want)
	}
}
