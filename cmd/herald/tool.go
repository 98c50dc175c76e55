package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/kafkarun"
)

// Operator commands (trace, dlq, suppressions) reach Kafka and Redis exactly
// as the workers do: the same variables and flags, _FILE secrets, and
// SASL/TLS settings, read through config.LoadTool.
var (
	toolKafkaVars = []string{
		"HERALD_KAFKA_BROKERS", "HERALD_INSTANCE_ID",
		"HERALD_KAFKA_SASL_MECHANISM", "HERALD_KAFKA_SASL_USERNAME", "HERALD_KAFKA_SASL_PASSWORD",
		"HERALD_KAFKA_TLS", "HERALD_KAFKA_TLS_CA_FILE", "HERALD_KAFKA_TLS_CERT_FILE", "HERALD_KAFKA_TLS_KEY_FILE",
		"HERALD_KAFKA_TLS_SERVER_NAME",
	}
	toolRedisVars = []string{
		"HERALD_REDIS_URL", "HERALD_REDIS_MODE", "HERALD_REDIS_MASTER_NAME", "HERALD_REDIS_USERNAME", "HERALD_REDIS_PASSWORD",
		"HERALD_REDIS_TLS_CA_FILE", "HERALD_REDIS_TLS_CERT_FILE", "HERALD_REDIS_TLS_KEY_FILE",
	}
)

// toolKafka is how a command reads and writes the cluster.
type toolKafka struct {
	brokers []string
	conn    *kafkarun.Connection // nil: plain connections
}

func newToolKafka(cfg *config.Config) (toolKafka, error) {
	conn, err := kafkaConnection(cfg)
	if err != nil {
		return toolKafka{}, err
	}
	return toolKafka{brokers: cfg.KafkaBrokers, conn: conn}, nil
}

// scan is the ScanConfig for reading records written at or after since.
func (k toolKafka) scan(since time.Time) kafkarun.ScanConfig {
	sc := kafkarun.ScanConfig{Brokers: k.brokers, Since: since}
	if k.conn != nil {
		sc.Dialer, sc.Transport = k.conn.Dialer, k.conn.Transport
	}
	return sc
}

func (k toolKafka) producer() *kafkarun.Producer {
	pc := kafkarun.ProducerConfig{Brokers: k.brokers}
	if k.conn != nil {
		pc.Transport = k.conn.Transport
	}
	return kafkarun.NewProducer(pc)
}

// reach fails, in one line naming HERALD_KAFKA_BROKERS and the addresses,
// when no broker answers. A one-shot command reports an outage at once
// instead of waiting it out as a worker does.
func (k toolKafka) reach(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, toolReachTimeout)
	defer cancel()
	conn := k.conn
	if conn == nil {
		conn = kafkarun.PlainConnection(toolReachTimeout)
	}
	err := conn.Reach(ctx, k.brokers)
	if err == nil {
		return nil
	}
	target := kafkaTarget(k.brokers)
	if kafkarun.Refused(err) {
		return fmt.Errorf("%s: HERALD_KAFKA_SASL_*/HERALD_KAFKA_TLS_*: %w", target, err)
	}
	return fmt.Errorf("%s: %w", target, err)
}

// toolReachTimeout bounds a command's first contact with Kafka or Redis.
const toolReachTimeout = 10 * time.Second

// openToolRedis opens Redis as the workers do. go-redis's own retry
// messages are not printed: a command reports the outcome in one line.
func openToolRedis(cfg *config.Config) (redis.UniversalClient, error) {
	redis.SetLogger(redisLogger{log: zap.NewNop()})
	client, err := dedupe.Connect(redisConnTarget(cfg))
	if err != nil {
		return nil, fmt.Errorf("HERALD_REDIS_URL: %w", err)
	}
	return client, nil
}

// reachToolRedis fails, in one line naming HERALD_REDIS_URL (password
// masked), when Redis does not answer.
func reachToolRedis(ctx context.Context, cfg *config.Config, client redis.UniversalClient) error {
	ctx, cancel := context.WithTimeout(ctx, toolReachTimeout)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("%s: %w", redisTarget(cfg), err)
	}
	// A deployment other than HERALD_REDIS_MODE (a cluster node reached as
	// one server) is refused here, since every command would otherwise
	// fail with MOVED. The workers' eviction check is theirs alone.
	var me *dedupe.ModeError
	if err := dedupe.NewChecker(client, dedupe.Mode(cfg.RedisMode), true, nil).Check(ctx); errors.As(err, &me) || errors.Is(err, dedupe.ErrUnknownMaster) {
		return toolConfigError{redisVerdict(err)}
	}
	return nil
}

// toolConfigError is a setting the server refused: the command exits 2,
// as for bad configuration, not 1 as for an outage.
type toolConfigError struct{ error }

func (e toolConfigError) Unwrap() error { return e.error }

// reachExit is a command's exit code for a failure to reach Kafka or Redis.
func reachExit(err error) int {
	var ce toolConfigError
	if errors.As(err, &ce) {
		return 2
	}
	return 1
}

// subcommand picks args[0] from names for command (e.g. "herald dlq"),
// printing usage for help. When ok is false the command returns code.
func subcommand(command, usage string, args []string, stdout, stderr io.Writer, names ...string) (name string, code int, ok bool) {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return "", 2, false
	}
	for _, n := range names {
		if args[0] == n {
			return n, 0, true
		}
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return "", 0, false
	}
	fmt.Fprintf(stderr, "%s: unknown subcommand %q (want %s; see %s -h)\n", command, args[0], orList(names), command)
	return "", 2, false
}

func orList(xs []string) string {
	switch len(xs) {
	case 0:
		return ""
	case 1:
		return xs[0]
	}
	out := xs[0]
	for _, x := range xs[1 : len(xs)-1] {
		out += ", " + x
	}
	return out + " or " + xs[len(xs)-1]
}

// loadTool parses a tool's flags and configuration; a non-nil *int is the
// exit code to return (0 after -h, 2 after a one-line error on stderr).
func loadTool(command string, fs *flag.FlagSet, args []string, getenv func(string) string, stderr io.Writer, vars []string, required ...string) (*config.Config, *int) {
	cfg, err := config.LoadTool(fs, args, getenv, vars, required...)
	if err == nil {
		return cfg, nil
	}
	code := 2
	if errors.Is(err, flag.ErrHelp) {
		code = 0
	} else {
		fmt.Fprintf(stderr, "%s: %v\n", command, err)
	}
	return nil, &code
}
