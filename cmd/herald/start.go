package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/internal/await"
	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/topics"
)

// What a worker needs before it starts consuming, and how it waits for it
// (docs/resilience.md, "Start-up"): Kafka answering with herald's topics in
// place, and Redis answering for the roles that claim keys. Until then the
// process serves /healthz (alive) and /readyz (503, naming what it waits
// for), and retries with backoff; a refusal that waiting cannot change
// stops it.

// awaitDependencies returns once every dependency of the fleet answered, or
// with the first refusal, or ctx's error.
func (f *fleet) awaitDependencies(ctx context.Context, conn *kafkarun.Connection) error {
	deps := []await.Dependency{kafkaDependency(f.cfg, conn)}
	if f.redis != nil {
		deps = append(deps, redisDependency(f.cfg, f.redis, f.redisCheck))
	}
	f.waiting.Log = f.log
	return f.waiting.All(ctx, deps...)
}

// kafkaDependency is reached when a seed broker accepts the connection
// settings and herald's topics exist (created if missing).
func kafkaDependency(cfg *config.Config, conn *kafkarun.Connection) await.Dependency {
	var specs []kafkarun.TopicSpec
	for _, t := range topics.Owned() {
		if t == topics.Schedule {
			specs = append(specs, scheduleSpec(cfg))
			continue
		}
		specs = append(specs, kafkarun.TopicSpec{Name: t, Partitions: cfg.TopicPartitions, Replication: cfg.TopicReplication})
	}
	refused := func(err error) error {
		return await.Refused(fmt.Errorf("HERALD_KAFKA_SASL_*/HERALD_KAFKA_TLS_*: %w", err))
	}
	d := kafkaTarget(cfg.KafkaBrokers)
	d.Reach = func(ctx context.Context) error {
		if err := conn.Reach(ctx, cfg.KafkaBrokers); err != nil {
			if kafkarun.Refused(err) {
				return refused(err)
			}
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		err := kafkarun.EnsureTopics(ctx, cfg.KafkaBrokers, conn.Transport, specs)
		switch {
		case err == nil:
			return nil
		case kafkarun.Refused(err):
			return refused(err)
		case kafkarun.LayoutRefused(err):
			// Retried: while a cluster starts, fewer brokers are up than
			// the replication asks for. If it lasts, the setting is wrong.
			return fmt.Errorf("HERALD_TOPIC_PARTITIONS=%d, HERALD_TOPIC_REPLICATION=%d: %w",
				cfg.TopicPartitions, cfg.TopicReplication, err)
		case kafkarun.Unanswered(err):
			// A broker that accepts a connection and then answers no
			// request is usually a listener expecting TLS or SASL.
			return fmt.Errorf("%w (a broker accepted the connection but answered no request; if this lasts, check that HERALD_KAFKA_TLS and HERALD_KAFKA_SASL_* match its listener)", err)
		}
		return err
	}
	return d
}

// kafkaTarget names the brokers and the variable that lists them.
func kafkaTarget(brokers []string) await.Dependency {
	return await.Dependency{Kind: "kafka", Address: strings.Join(brokers, ","), Variable: "HERALD_KAFKA_BROKERS"}
}

// redisTarget names Redis, its password masked, and the variable.
func redisTarget(cfg *config.Config) await.Dependency {
	return await.Dependency{Kind: "redis", Address: redisAddress(cfg), Variable: "HERALD_REDIS_URL"}
}

// redisDependency is reached when Redis answers PING, accepts herald's
// credentials and scripts, and is deployed as HERALD_REDIS_MODE says with a
// maxmemory-policy that keeps herald's keys (chk; nil skips those checks).
func redisDependency(cfg *config.Config, client redis.UniversalClient, chk *dedupe.Checker) await.Dependency {
	d := redisTarget(cfg)
	d.Reach = func(ctx context.Context) error {
		// CheckAccess fails only on a refusal, and passes an unreachable
		// server; the PING after it tells whether Redis answered.
		if err := dedupe.CheckAccess(ctx, client); err != nil {
			return await.Refused(fmt.Errorf("HERALD_REDIS_URL/HERALD_REDIS_USERNAME/HERALD_REDIS_PASSWORD/HERALD_REDIS_TLS_*: %w", err))
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		pingErr := client.Ping(ctx).Err()
		if chk == nil {
			return pingErr
		}
		// The checks run even when PING fails: a Sentinel client asked
		// for a master no sentinel monitors never reaches a server, and
		// only the checks tell that from an outage.
		if err := chk.Check(ctx); err != nil {
			return await.Refused(redisVerdict(err))
		}
		if pingErr != nil {
			return pingErr
		}
		// Then what /readyz asks: the checks completed (Redis may have
		// stopped answering since the PING, or a Sentinel client not yet
		// followed a failover) and every master takes writes (not OOM).
		return chk.Ready(ctx)
	}
	return d
}

// redisAddress is HERALD_REDIS_URL with its password masked, for logs and
// /readyz.
func redisAddress(cfg *config.Config) string {
	if s := cfg.Redacted()["HERALD_REDIS_URL"]; s != "" {
		return s
	}
	return "(unset)"
}
