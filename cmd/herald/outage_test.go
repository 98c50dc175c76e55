package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gymhq/herald/internal/poll"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/sim"
	"github.com/gymhq/herald/topics"
)

// Outage tests: a dependency goes away in the middle of a stream and comes
// back. Each ends with the counts of expected, delivered, duplicated and
// lost messages, logged and asserted.

// TestOutageRedis stops the redis-server holding the idempotency keys while
// messages are being delivered. Channel workers must stop claiming and
// send nothing unguarded while it is down (fail closed), report not ready,
// and deliver everything once it is back.
//
// "restarts with its data" is a Redis with an append-only file. "restarts
// empty" is one that lost its data (no persistence, or a FLUSHALL): the
// stream in progress is still delivered exactly once, because records whose
// offsets were committed are never redelivered and the ones in flight
// re-claim keys that are simply absent. What it admits is measured too: a
// booking event replayed after the wipe, whose notifications had already
// been sent, is sent again, since the lost keys were the only record of
// those sends. With its data, the same replay is deduplicated.
func TestOutageRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("outage")
	}
	for _, tc := range []struct {
		name    string
		args    []string
		replays int
	}{
		{"restarts with its data", redistest.Persistent, 5},
		{"restarts empty", nil, 5},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			redis := redistest.StartWith(t, tc.args...)
			env, logs := newTestEnv(t, 3, redis)
			startFleet(t, env)

			g := sim.New(sim.Options{Seed: 7, Members: 40, Prefix: "or" + tc.name[9:11]})
			// settled is delivered and committed before the outage, so its
			// "sent" records certainly exist when Redis goes: the replay
			// below uses it.
			settled := newWorkload(t, g, 10)
			before := newWorkload(t, g, 60)
			during := newWorkload(t, g, 40)
			settled.publish(t, env)
			waitDelivered(t, env, settled, 30*time.Second)
			before.publish(t, env)
			poll.Until(t, 30*time.Second, "a third of the first batch delivered", func() bool { return env.outbox.Len() >= settled.total+before.total/3 })

			redis.Stop()
			stoppedAt := env.outbox.Len()
			poll.Until(t, 20*time.Second, "workers to see the outage", func() bool {
				return strings.Contains(logs.String(), "handler could not reach a durable outcome") && env.fleet.ready(context.Background()) != nil
			})
			// Sends that held their claim before the stop finish (their
			// "sent" record waits for Redis); nothing new may start.
			quiet := waitStable(env, 300*time.Millisecond, 10*time.Second)
			during.publish(t, env)
			// The dispatcher holds the second batch too: it reads people's
			// preferences from Redis before it fans out (docs/resilience.md).
			time.Sleep(time.Second)
			if err := observeNoDeliveries(env, quiet, 2*time.Second); err != nil {
				t.Errorf("sent without Redis (not fail closed): %v", err)
			}
			t.Logf("Redis down: %d delivered when it stopped, %d after in-flight sends finished, none while down", stoppedAt, quiet)

			if err := redis.Restart(); err != nil {
				t.Fatal(err)
			}
			poll.Until(t, 20*time.Second, "ready again", func() bool { return env.fleet.ready(context.Background()) == nil })

			all := newWorkload(t, nil, 0)
			all.merge(settled)
			all.merge(before)
			all.merge(during)
			c := waitDelivered(t, env, all, 60*time.Second)
			assertExactlyOnce(t, "stream across the outage", c)

			// Replay a few events delivered and committed before the outage.
			replay := newWorkload(t, nil, 0)
			for _, ev := range settled.events[:tc.replays] {
				replay.add(t, ev)
			}
			admitted := 0
			if tc.args == nil {
				admitted = replay.total // the wiped keys were their only record
			}
			replay.publish(t, env)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := env.outbox.Wait(ctx, all.total+admitted); err != nil {
				t.Fatalf("replay: delivered %d, want %d: %v", env.outbox.Len(), all.total+admitted, err)
			}
			waitDrained(t, env)
			c = count(env, all)
			t.Logf("replayed %d events (%d notifications) after the restart: %d sent again (admitted: %d)",
				tc.replays, replay.total, c.duplicated, admitted)
			if c.duplicated != admitted || c.lost != 0 || c.unexpected != 0 {
				t.Errorf("after replay: %s; want duplicated %d, lost 0", c, admitted)
			}
		})
	}
}

// TestOutageSMTP makes the SMTP server refuse connections. Emails must
// wait while SMS and push keep flowing, then go out exactly once when the
// server is back. They wait in one of two places:
//
//   - "breaker": with the default circuit breaker, the first failures open
//     it and the email channel pauses; the rest wait unclaimed in Kafka, no
//     retry spent, until a probe finds the server back.
//   - "retry ladder": with the breaker out of the way, every email waits on
//     herald.email.retry.v1 with a not-before time.
func TestOutageSMTP(t *testing.T) {
	if testing.Short() {
		t.Skip("outage")
	}
	for _, ladder := range []bool{false, true} {
		name := "breaker"
		if ladder {
			name = "retry ladder"
		}
		t.Run(name, func(t *testing.T) { testOutageSMTP(t, ladder) })
	}
}

func testOutageSMTP(t *testing.T, ladder bool) {
	redis := redistest.Start(t)
	env, _ := newTestEnv(t, 3, redis)
	if ladder { // a breaker that never opens, built by the stage from this configuration
		env.cfg.BreakerFailures = 1 << 30
	}
	if err := env.smtp.Refuse(true); err != nil {
		t.Fatal(err)
	}
	startFleet(t, env)
	w := newWorkload(t, sim.New(sim.Options{Seed: 11, Members: 40, Prefix: "os"}), 50)
	emails := 0
	for k, n := range w.want {
		if k.channel == "email" {
			emails += n
		}
	}
	if emails == 0 {
		t.Fatal("workload has no email")
	}
	w.publish(t, env)

	retry := topics.Retry(notification.Email)
	breaker := env.fleet.metrics.Protect.BreakerState.WithLabelValues("email")
	poll.Until(t, 30*time.Second, "every email waiting: on the retry topic, or behind the open breaker", func() bool {
		return topicRecords(t, env, retry) >= emails || (!ladder && testutil.ToFloat64(breaker) == 2)
	})
	others := w.total - emails
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := env.outbox.Wait(ctx, others); err != nil {
		t.Fatalf("SMS and push held up by the SMTP outage: %d of %d delivered", env.outbox.Len(), others)
	}
	for _, d := range env.outbox.All() {
		if d.Channel == "email" {
			t.Fatalf("an email was delivered while the SMTP server refused connections")
		}
	}
	waiting := map[string]bool{}
	for _, m := range readAll(t, env.brokers(), retry) {
		n, err := notification.Decode(m.Value)
		if err != nil {
			t.Fatalf("retry record: %v", err)
		}
		if n.Attempt != 1 || n.NotBefore.IsZero() || !n.NotBefore.After(n.FirstFailedAt) || !w.ids[n.ID] {
			t.Errorf("retry record %s: attempt %d, not before %v, first failed %v", n.ID, n.Attempt, n.NotBefore, n.FirstFailedAt)
		}
		waiting[n.ID] = true
	}
	if ladder && len(waiting) != emails {
		t.Errorf("%d of %d emails on the retry topic", len(waiting), emails)
	}
	t.Logf("SMTP down: %d emails waiting on %s (not before ≈10s later), %d behind the open breaker; %d SMS/push delivered meanwhile",
		len(waiting), retry, emails-len(waiting), others)

	if err := env.smtp.Refuse(false); err != nil {
		t.Fatal(err)
	}
	// The breaker lets a probe through after HERALD_BREAKER_OPEN_FOR (30s);
	// retries wait for their not-before time.
	assertExactlyOnce(t, "after the SMTP server came back", waitDelivered(t, env, w, 90*time.Second))
}

// TestOutageKafka makes the in-process Kafka cluster drop connections with
// its control hooks: every request of the chosen kind is answered by
// closing the connection, for a while.
//
//   - "fetch connections drop": consumers' fetches fail for 2s while
//     everything else works; readers must reconnect and resume where they
//     were.
//   - "broker restart": every request fails for 7s, past the 6s session
//     timeout — what clients see while a single-broker cluster restarts:
//     producers, fetchers, heartbeats and commits all fail and the group
//     coordinator expires every member. Consumers must reconnect, rejoin
//     and continue; records processed but not committed are redelivered and
//     must be recognised by their idempotency keys, not sent again.
func TestOutageKafka(t *testing.T) {
	if testing.Short() {
		t.Skip("outage")
	}
	for _, tc := range []struct {
		name   string
		key    int16 // request key to drop, -1 for every request
		down   time.Duration
		rejoin bool
	}{
		{"fetch connections drop", int16(kmsg.Fetch), 2 * time.Second, false},
		{"broker restart", -1, 7 * time.Second, true},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			redis := redistest.Start(t)
			env, logs := newTestEnv(t, 3, redis)
			startFleet(t, env)

			g := sim.New(sim.Options{Seed: 13, Members: 40, Prefix: "ok" + tc.name[:2]})
			before := newWorkload(t, g, 60)
			after := newWorkload(t, g, 40)
			before.publish(t, env)
			poll.Until(t, 30*time.Second, "a third of the first batch delivered", func() bool { return env.outbox.Len() >= before.total/3 })

			var down atomic.Bool
			var dropped atomic.Int64
			errDown := errors.New("connection dropped by the test")
			down.Store(true)
			env.cluster.ControlKey(tc.key, func(kmsg.Request) (kmsg.Response, error, bool) {
				if !down.Load() {
					env.cluster.DropControl()
					return nil, nil, false
				}
				env.cluster.KeepControl()
				dropped.Add(1)
				return nil, errDown, true
			})
			atOutage := env.outbox.Len()
			joinsBefore := strings.Count(logs.String(), "joined consumer group")
			time.Sleep(tc.down) // the outage itself, not synchronisation
			down.Store(false)
			t.Logf("down %v: %d requests answered by dropping the connection; %d delivered before, %d by the end of it",
				tc.down, dropped.Load(), atOutage, env.outbox.Len())
			if dropped.Load() == 0 {
				t.Fatal("the control hook dropped nothing")
			}
			after.publish(t, env)

			all := newWorkload(t, nil, 0)
			all.merge(before)
			all.merge(after)
			assertExactlyOnce(t, "stream across the outage", waitDelivered(t, env, all, 75*time.Second))
			out := logs.String()
			joins := strings.Count(out, "joined consumer group") - joinsBefore
			dups := strings.Count(out, `"outcome":"duplicate"`)
			t.Logf("consumer groups rejoined %d times; %d redelivered notifications recognised as already sent", joins, dups)
			if tc.rejoin && joins == 0 {
				t.Error("no consumer rejoined its group after the outage")
			}
		})
	}
}

// waitStable waits until the outbox has not grown for quiet (or max
// passes) and returns its size.
func waitStable(env *devEnv, quiet, max time.Duration) int {
	deadline := time.Now().Add(max)
	n, since := env.outbox.Len(), time.Now()
	for time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		if m := env.outbox.Len(); m != n {
			n, since = m, time.Now()
		} else if time.Since(since) >= quiet {
			break
		}
	}
	return n
}

// observeNoDeliveries watches the outbox for d and reports any growth past
// n. Showing that nothing happens needs a window of time.
func observeNoDeliveries(env *devEnv, n int, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := env.outbox.Wait(ctx, n+1); err == nil {
		return fmt.Errorf("the outbox grew to %d from %d", env.outbox.Len(), n)
	}
	return nil
}

// topicRecords is the number of records in every partition of topic.
func topicRecords(t testing.TB, env *devEnv, topic string) int {
	client := &kafka.Client{Addr: kafka.TCP(env.brokers()...)}
	n := 0
	for _, end := range endOffsets(t, client, topic, env.cfg.TopicPartitions) {
		n += int(end)
	}
	return n
}

// channelRecords is the number of records on the three channel topics.
func channelRecords(t *testing.T, env *devEnv) int {
	n := 0
	for _, ch := range notification.Known() {
		n += topicRecords(t, env, topics.Channel(ch))
	}
	return n
}
