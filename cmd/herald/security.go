package main

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/kafkarun"
)

// kafkaConnection is how every Kafka client of this process connects
// (consumer groups, readers, the producer, topic creation, and any command
// that talks to the cluster): HERALD_KAFKA_SASL_* and HERALD_KAFKA_TLS_*.
func kafkaConnection(cfg *config.Config) (*kafkarun.Connection, error) {
	sec := kafkarun.Security{
		Username: cfg.KafkaSASLUsername, Password: cfg.KafkaSASLPassword,
		TLS:    cfg.KafkaTLS == config.On,
		CAFile: cfg.KafkaTLSCAFile, CertFile: cfg.KafkaTLSCertFile, KeyFile: cfg.KafkaTLSKeyFile,
		ServerName: cfg.KafkaTLSServerName,
		ClientID:   cfg.InstanceID,
	}
	if cfg.KafkaSASLMechanism != config.KafkaSASLNone {
		sec.SASLMechanism = string(cfg.KafkaSASLMechanism)
	}
	conn, err := sec.Build()
	if err != nil {
		return nil, fmt.Errorf("HERALD_KAFKA_SASL_*/HERALD_KAFKA_TLS_*: %w", err)
	}
	return conn, nil
}

// redisConnTarget is HERALD_REDIS_URL, _MODE, _MASTER_NAME and the Redis
// security variables: how every Redis client of this process (workers and
// operator commands) connects.
func redisConnTarget(cfg *config.Config) dedupe.Target {
	return dedupe.Target{
		URL: cfg.RedisURL, Mode: dedupe.Mode(cfg.RedisMode), MasterName: cfg.RedisMasterName,
		Security: dedupe.Security{
			Username: cfg.RedisUsername, Password: cfg.RedisPassword,
			CAFile: cfg.RedisTLSCAFile, CertFile: cfg.RedisTLSCertFile, KeyFile: cfg.RedisTLSKeyFile,
		},
	}
}

// openRedis makes the workers' Redis client and its checks (dedupe.Checker:
// the deployment against HERALD_REDIS_MODE, the maxmemory-policy). It does
// not connect: the fleet waits for Redis to answer before it starts, and
// runs the checks then (redisDependency); a refusal stops the process.
// onUnsafe is called for an evicting policy HERALD_REDIS_ALLOW_EVICTION
// lets through.
func openRedis(cfg *config.Config, onUnsafe func(*dedupe.EvictionError)) (redis.UniversalClient, *dedupe.Checker, error) {
	client, err := dedupe.Connect(redisConnTarget(cfg))
	if err != nil {
		return nil, nil, fmt.Errorf("HERALD_REDIS_URL: %w", err)
	}
	chk := dedupe.NewChecker(client, dedupe.Mode(cfg.RedisMode), cfg.RedisAllowEviction == config.On, onUnsafe)
	return client, chk, nil
}

// redisVerdict names the variable to change for a Redis the checks refuse.
func redisVerdict(err error) error {
	var me *dedupe.ModeError
	var ee *dedupe.EvictionError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &me):
		fix := "HERALD_REDIS_MODE=" + string(me.Found)
		if me.Found == dedupe.Sentinel {
			fix += " with HERALD_REDIS_MASTER_NAME and the sentinels in HERALD_REDIS_URL"
		}
		return fmt.Errorf("HERALD_REDIS_MODE is %s, but %s; set %s", me.Want, me.What(), fix)
	case errors.Is(err, dedupe.ErrUnknownMaster):
		return fmt.Errorf("HERALD_REDIS_MASTER_NAME: %v (see `sentinel monitor <name>` in the sentinels' configuration)", err)
	case errors.As(err, &ee):
		return fmt.Errorf("HERALD_REDIS_ALLOW_EVICTION: %v, or set HERALD_REDIS_ALLOW_EVICTION=on to run anyway", err)
	}
	return fmt.Errorf("HERALD_REDIS_URL/HERALD_REDIS_USERNAME/HERALD_REDIS_PASSWORD/HERALD_REDIS_TLS_*: %w", err)
}

// redisEvictionAllowed is the warning and gauge for a Redis that may evict
// herald's keys, run on because HERALD_REDIS_ALLOW_EVICTION=on; e is nil
// when every master is back on noeviction.
func (f *fleet) redisEvictionAllowed(e *dedupe.EvictionError) {
	if e == nil {
		f.metrics.RedisEvictionUnsafe.Set(0)
		if f.log != nil {
			f.log.Info("redis maxmemory-policy is noeviction on every master again")
		}
		return
	}
	f.metrics.RedisEvictionUnsafe.Set(1)
	if f.log != nil {
		f.log.Warn("HERALD_REDIS_ALLOW_EVICTION=on: running on a Redis that may evict idempotency keys and suppression lists",
			zap.String("node", e.Node), zap.String("maxmemory_policy", e.Policy))
	}
}

// redisReady is the Redis part of /readyz: the start-up checks (run late
// when Redis was unreachable at start; a refusal found then is logged once
// and keeps the worker unready) and a write probe on every master.
func (f *fleet) redisReady(chk *dedupe.Checker) func(context.Context) error {
	var once sync.Once
	return func(ctx context.Context) error {
		err := chk.Ready(ctx)
		if v := redisVerdict(chk.Verdict()); v != nil {
			once.Do(func() {
				if f.log != nil {
					f.log.Error("redis cannot be used; not ready until it is fixed and herald restarted", zap.Error(v))
				}
			})
			return v
		}
		return err
	}
}
