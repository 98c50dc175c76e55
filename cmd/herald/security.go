package main

import (
	"fmt"

	"github.com/redis/go-redis/v9"

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

// openRedis makes the idempotency store's client from HERALD_REDIS_URL and
// HERALD_REDIS_USERNAME/_PASSWORD/_TLS_*. It does not connect: the fleet
// waits for Redis to answer before it starts (redisDependency).
func openRedis(cfg *config.Config) (redis.UniversalClient, error) {
	client, err := dedupe.OpenSecure(cfg.RedisURL, dedupe.Security{
		Username: cfg.RedisUsername, Password: cfg.RedisPassword,
		CAFile: cfg.RedisTLSCAFile, CertFile: cfg.RedisTLSCertFile, KeyFile: cfg.RedisTLSKeyFile,
	})
	if err != nil {
		return nil, fmt.Errorf("HERALD_REDIS_URL: %w", err)
	}
	return client, nil
}
