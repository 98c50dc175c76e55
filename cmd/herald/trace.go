package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/dlq"
	"github.com/gymhq/herald/receipts"
	"github.com/gymhq/herald/story"
)

const traceUsage = `Usage: herald trace EVENT_ID [--since 24h] [--json] [config flags]

Shows one booking event's whole story across roles: the event record, every
notification the dispatcher made from it, retries and dead letters, and each
notification's final state in the idempotency store (sent with the
provider's id, failed with the reason, in flight, or not yet decided).
Addresses are masked.

It reads the events, channel, retry and DLQ topics from --since (a duration
ago, or an RFC 3339 time, as herald dlq replay takes it) to their
current end, without a consumer group (it commits nothing), so its cost grows
with --since. Kafka and Redis are reached as the workers reach them (the
HERALD_KAFKA_* and HERALD_REDIS_* variables, their _FILE forms and flags);
without HERALD_REDIS_URL the final states are not shown.
`

// traceVars are the configuration herald trace reads.
var traceVars = append(append([]string{"HERALD_EVENTS_TOPIC"}, toolKafkaVars...), toolRedisVars...)

// cmdTrace is `herald trace EVENT_ID`.
func cmdTrace(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return runTrace(ctx, args, os.Getenv, os.Stdout, os.Stderr)
}

func runTrace(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("herald trace", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() { fmt.Fprint(stderr, traceUsage, "\nFlags:\n"); fs.SetOutput(stderr); fs.PrintDefaults() }
	since := fs.String("since", "24h", "how far back to read: a duration, or an RFC 3339 time")
	asJSON := fs.Bool("json", false, "print one JSON object instead of a report")
	// The event id may come before or after the flags.
	var id string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		id, args = args[0], args[1:]
	}
	// Brokers are required only once there is an event to trace: without
	// one, the usage says what is missing.
	cfg, exit := loadTool("herald trace", fs, args, getenv, stderr, traceVars)
	if exit != nil {
		return *exit
	}
	if id == "" && fs.NArg() == 1 {
		id = fs.Arg(0)
	}
	if id == "" || fs.NArg() > 1 || (fs.NArg() == 1 && fs.Arg(0) != id) {
		fs.Usage()
		return 2
	}
	if err := cfg.Require("HERALD_KAFKA_BROKERS"); err != nil {
		fmt.Fprintf(stderr, "herald trace: %v\n", err)
		return 2
	}
	from, err := dlq.ParseSince(*since, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "herald trace: --since: %v\n", err)
		return 2
	}

	k, err := newToolKafka(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "herald trace: %v\n", err)
		return 2
	}
	if err := k.reach(ctx); err != nil {
		fmt.Fprintf(stderr, "herald trace: %v\n", err)
		return 1
	}
	src := story.Sources{Scan: k.scan(from), EventsTopic: cfg.EventsTopic}
	if cfg.RedisURL != "" {
		client, err := openToolRedis(cfg)
		if err != nil {
			fmt.Fprintf(stderr, "herald trace: %v\n", err)
			return 2
		}
		if err := reachToolRedis(ctx, cfg, client); err != nil {
			client.Close()
			fmt.Fprintf(stderr, "herald trace: %v\n", err)
			return reachExit(err)
		}
		store := dedupe.NewRedis(client, dedupe.Options{})
		defer func() { store.Close(); client.Close() }()
		src.Store = store
		src.Receipts = receipts.NewRedis(client, 0)
	}
	st, err := story.Trace(ctx, src, id)
	if err != nil {
		fmt.Fprintf(stderr, "herald trace: %v\n", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(st) //nolint:errcheck // stdout
	} else {
		st.Print(stdout)
	}
	if len(st.Records) == 0 {
		return 1
	}
	return 0
}
