package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gymhq/herald/dlq"
	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/topics"
)

const dlqUsage = `Usage:
  herald dlq inspect [--samples N] [--json] [config flags]
  herald dlq replay  [--reason R] [--channel C] [--since T] [--dry-run] [config flags]

inspect summarises herald.dlq.v1: counts by reason, class, channel and stage,
the oldest and newest failure, and a few samples with masked addresses.

replay sends dead letters back through the pipeline: notifications to their
channel topic with their ids kept (and a fresh retry ladder), events to the
events topic. A notification that failed permanently may be claimed again; one
that was sent is not sent again, so replaying twice delivers once. Records
that cannot be replayed (garbled, or an event that still does not validate)
are reported and skipped. Filters: --reason (e.g. unavailable, exhausted),
--channel (a channel herald has, or events), --since (RFC 3339 time or a duration
such as 2h: last failure at or after it).

Both read the records present when they start, from every partition, without
a consumer group. A replay that stops half-way is resumed by running it again:
what it already replayed is recognised by the idempotency keys.
Kafka is reached as the workers reach it: HERALD_KAFKA_BROKERS and the
HERALD_KAFKA_SASL_*/TLS_* settings (or their flags, e.g. --kafka-brokers);
replayed events go to HERALD_EVENTS_TOPIC (--events-topic).
`

// cmdDLQ is `herald dlq`.
func cmdDLQ(args []string) int {
	sub, code, ok := subcommand("herald dlq", dlqUsage, args, os.Stdout, os.Stderr, "inspect", "replay")
	if !ok {
		return code
	}
	fs := flag.NewFlagSet("herald dlq "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() { fmt.Fprint(os.Stderr, dlqUsage) }
	samples := fs.Int("samples", 10, "inspect: samples to show")
	asJSON := fs.Bool("json", false, "inspect: print JSON")
	var opts replayOptions
	reason := fs.String("reason", "", "replay: only this reason")
	channel := fs.String("channel", "", "replay: only this channel ("+notification.Names()+") or events")
	since := fs.String("since", "", "replay: only records whose last failure is at or after this (RFC 3339, or a duration like 2h)")
	fs.BoolVar(&opts.DryRun, "dry-run", false, "replay: report what would be replayed, send nothing")
	cfg, exit := loadTool("herald dlq "+sub, fs, args[1:], os.Getenv, os.Stderr,
		append([]string{"HERALD_EVENTS_TOPIC"}, toolKafkaVars...), "HERALD_KAFKA_BROKERS")
	if exit != nil {
		return *exit
	}
	if fs.NArg() != 0 {
		fmt.Fprint(os.Stderr, dlqUsage)
		return 2
	}
	if *samples < 0 {
		fmt.Fprintf(os.Stderr, "herald dlq %s: --samples %d: want 0 or more\n", sub, *samples)
		return 2
	}
	opts.EventsTopic = cfg.EventsTopic
	k, err := newToolKafka(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "herald dlq %s: %v\n", sub, err)
		return 2
	}
	if opts.Filter, err = dlq.ParseFilter(*reason, *channel, *since, time.Now()); err != nil {
		fmt.Fprintf(os.Stderr, "herald dlq: %v\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := k.reach(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "herald dlq %s: %v\n", sub, err)
		return 1
	}
	switch sub {
	case "inspect":
		err = dlqInspect(ctx, os.Stdout, k, *samples, *asJSON)
	case "replay":
		var rep replayReport
		rep, err = dlqReplay(ctx, os.Stdout, k, opts)
		if err == nil && rep.Skipped > 0 {
			return 1 // done, but not everything could be replayed: say so in the exit code
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "herald dlq %s: %v\n", sub, err)
		return 1
	}
	return 0
}

func dlqInspect(ctx context.Context, w io.Writer, k toolKafka, samples int, asJSON bool) error {
	s := dlq.NewSummary(samples)
	var mu sync.Mutex // Scan reads partitions concurrently
	_, err := kafkarun.Scan(ctx, k.scan(time.Time{}), topics.DLQ, func(m *queue.Message) error {
		mu.Lock()
		defer mu.Unlock()
		e, err := dlq.Decode(m)
		if err != nil {
			s.AddMalformed(m.Partition, m.Offset, err)
			return nil
		}
		s.Add(e, obs.MaskAddress)
		return nil
	})
	if err != nil {
		return err
	}
	s.Finish()
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	fmt.Fprintf(w, "%s: %d dead letters", topics.DLQ, s.Total)
	if s.Malformed > 0 {
		fmt.Fprintf(w, " (%d malformed: not written by herald, or damaged)", s.Malformed)
	}
	fmt.Fprintln(w)
	if s.Total == s.Malformed {
		return nil
	}
	fmt.Fprintf(w, "failures from %s to %s\n", s.Oldest.Format(time.RFC3339), s.Newest.Format(time.RFC3339))
	for _, c := range []struct {
		name string
		m    map[string]int
	}{{"reason", s.ByReason}, {"class", s.ByClass}, {"channel", s.ByChannel}, {"stage", s.ByStage}} {
		fmt.Fprintf(w, "by %-8s %s\n", c.name+":", counts(c.m))
	}
	if len(s.Samples) > 0 {
		fmt.Fprintln(w, "samples:")
	}
	for _, smp := range s.Samples {
		if smp.Problem != "" {
			fmt.Fprintf(w, "  %d/%d  malformed: %s\n", smp.Partition, smp.Offset, smp.Problem)
			continue
		}
		fmt.Fprintf(w, "  %d/%d  %s %s %s attempts=%d last=%s", smp.Partition, smp.Offset, smp.Stage, smp.Class, smp.Reason,
			smp.Attempts, smp.LastFailure.Format(time.RFC3339))
		if smp.To != "" {
			fmt.Fprintf(w, " to=%s", smp.To)
		}
		if smp.EventID != "" {
			fmt.Fprintf(w, " event=%s", smp.EventID)
		}
		if smp.NotificationID != "" {
			fmt.Fprintf(w, " notification=%s", smp.NotificationID)
		}
		if smp.RecipientID != "" {
			// Its reason and error say why (an address, a schedule too far
			// ahead): the label names neither.
			fmt.Fprintf(w, " recipient=%s channel=%s (refused for this recipient: inspect only, not replayable)", smp.RecipientID, smp.Channel)
		}
		if smp.Error != "" {
			fmt.Fprintf(w, "\n      %s", smp.Error)
		}
		fmt.Fprintln(w)
	}
	return nil
}

// counts prints a count map largest first.
func counts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

type replayOptions struct {
	dlq.Filter
	DryRun      bool
	EventsTopic string
}

type replayReport struct {
	Replayed map[string]int // by target topic
	Filtered int
	Skipped  int
}

// dlqReplay scans the DLQ and publishes a replay record for each record the
// filters select. Unreplayable records are reported on w and skipped.
func dlqReplay(ctx context.Context, w io.Writer, k toolKafka, o replayOptions) (replayReport, error) {
	rep := replayReport{Replayed: map[string]int{}}
	var prod *kafkarun.Producer
	if !o.DryRun {
		prod = k.producer()
		defer prod.Close()
	}
	at := time.Now()
	var batch []queue.Message
	flush := func() error {
		if len(batch) == 0 || o.DryRun {
			batch = batch[:0]
			return nil
		}
		if err := prod.Publish(ctx, batch...); err != nil {
			return fmt.Errorf("publishing replayed records: %w", err)
		}
		batch = batch[:0]
		return nil
	}
	var mu sync.Mutex // Scan reads partitions concurrently; batch is shared
	// A record's timestamp is never before its last failure, so reading from
	// Since skips only records the filter would drop.
	ranges, err := kafkarun.Scan(ctx, k.scan(o.Since), topics.DLQ, func(m *queue.Message) error {
		mu.Lock()
		defer mu.Unlock()
		e, err := dlq.Decode(m)
		if err != nil {
			rep.Skipped++
			fmt.Fprintf(w, "skip %d/%d: %v\n", m.Partition, m.Offset, err)
			return nil
		}
		if !o.Match(e) {
			rep.Filtered++
			return nil
		}
		r, err := dlq.Replay(e, o.EventsTopic, at)
		if err != nil {
			rep.Skipped++
			fmt.Fprintf(w, "skip %d/%d (%s, %s): %v\n", m.Partition, m.Offset, e.Stage, e.Reason, err)
			return nil
		}
		rep.Replayed[r.Topic]++
		batch = append(batch, r)
		if len(batch) >= 200 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	verb := "replayed"
	if o.DryRun {
		verb = "would replay"
	}
	total := 0
	for _, n := range rep.Replayed {
		total += n
	}
	fmt.Fprintf(w, "%s %d (%s), skipped %d, filtered out %d", verb, total, counts(rep.Replayed), rep.Skipped, rep.Filtered)
	for _, r := range ranges {
		fmt.Fprintf(w, "; p%d %d..%d", r.Partition, r.Start, r.End)
	}
	fmt.Fprintln(w)
	return rep, err
}
