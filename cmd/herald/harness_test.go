package main

import (
	"context"
	"fmt"
	"maps"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/gymhq/herald/dispatcher"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/sim"
	"github.com/gymhq/herald/templates"
)

// Helpers shared by the fleet-level tests (outage, transient errors, bad
// input, log scan). They drive the real fleet wiring of newDevEnv, like
// TestEndToEnd, and reuse its helpers (waitDrained, readAll, jsonLogger).

// newTestEnv starts the environment a fleet-level test runs on: an
// in-process Kafka cluster with the given partitions per topic, redis for
// idempotency, and JSON logs captured in the returned buffer. It closes when
// the test ends, after the fleet: startFleet registers its stop later, so
// that cleanup runs first.
func newTestEnv(t testing.TB, partitions int, redis *redistest.Server) (*devEnv, *syncBuffer) {
	t.Helper()
	return newTestEnvWith(t, partitions, redis, "")
}

// newTestEnvWith is newTestEnv serving the template tree in dir ("" is the
// built-in one).
func newTestEnvWith(t testing.TB, partitions int, redis *redistest.Server, dir string) (*devEnv, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	env, err := newDevEnv(devOptions{KafkaAddr: "127.0.0.1:0", Partitions: partitions, RedisURL: redis.URL(), Log: jsonLogger(logs), TemplatesDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)
	return env, logs
}

// startFleet runs env's fleet until the test ends and returns once it is
// ready; the returned func stops it early (idempotent) and reports a run
// error.
func startFleet(t testing.TB, env *devEnv) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- env.fleet.run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("fleet run: %v", err)
		}
	}
	t.Cleanup(stop)
	// Ready means herald's topics exist and every consumer holds a
	// generation, so what the test publishes next has somewhere to go.
	deadline := time.Now().Add(30 * time.Second)
	for env.fleet.ready(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("fleet not ready after 30s: %v", env.fleet.ready(ctx))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return stop
}

// workload is a batch of generated booking events and the deliveries the
// planner says they must produce.
type workload struct {
	planner *dispatcher.Planner
	events  []sim.Event
	want    map[addrKey]int // deliveries per channel and address
	ids     map[string]bool // notification ids (email Message-IDs carry them)
	total   int
}

// newWorkload generates n events with g (nil when n is 0) and plans them. Notifications to
// addresses in skip (permanent failures) are not expected.
//
// An event whose plan changes within the next few minutes is replaced by
// another: the fleet plans it a little later than the workload does, and a
// member's quiet hours beginning or ending in between would make the
// expectation wrong (two messages a quiet window deferred at 05:59 UTC were
// sent when it ended at 06:00, Madrid's 07:00, and counted as duplicates).
func newWorkload(t testing.TB, g *sim.Generator, n int, skip ...string) *workload {
	t.Helper()
	return newWorkloadAt(t, time.Now, g, n, skip...)
}

// newWorkloadAt is newWorkload planning on the clock now.
func newWorkloadAt(t testing.TB, now func() time.Time, g *sim.Generator, n int, skip ...string) *workload {
	t.Helper()
	tpl, err := templates.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	w := &workload{planner: &dispatcher.Planner{Templates: tpl, Now: now}, want: map[addrKey]int{}, ids: map[string]bool{}}
	for kept := 0; kept < n; {
		if ev := g.Next(); w.settled(t, ev, now()) {
			w.add(t, ev, skip...)
			kept++
		}
	}
	return w
}

// settleFor is how long a generated event's plan must stay as it is: longer
// than a fleet test runs.
const settleFor = 5 * time.Minute

// settled reports whether ev's plan, made at now, sends the same
// notifications at once as one made settleFor later.
func (w *workload) settled(t testing.TB, ev sim.Event, now time.Time) bool {
	t.Helper()
	dueNow := func(at time.Time) map[string]bool {
		p := *w.planner
		p.Now = func() time.Time { return at }
		ns, err := p.Plan(ev.Value)
		if err != nil {
			t.Fatalf("plan %s: %v", ev.ID, err)
		}
		ids := map[string]bool{}
		for _, n := range ns {
			ids[n.ID] = true
		}
		return ids
	}
	return maps.Equal(dueNow(now), dueNow(now.Add(settleFor)))
}

// add adds one event and the deliveries it must produce.
func (w *workload) add(t testing.TB, ev sim.Event, skip ...string) {
	t.Helper()
	w.events = append(w.events, ev)
	ns, err := w.planner.Plan(ev.Value)
	if err != nil {
		t.Fatalf("plan %s: %v", ev.ID, err)
	}
next:
	for _, n := range ns {
		for _, s := range skip {
			if n.To == s {
				continue next
			}
		}
		w.want[addrKey{string(n.Channel), n.To}]++
		w.ids[n.ID] = true
		w.total++
	}
}

// channelTotal is how many of the deliveries are on channel ch.
func (w *workload) channelTotal(ch string) int {
	n := 0
	for k, c := range w.want {
		if k.channel == ch {
			n += c
		}
	}
	return n
}

// merge adds o's events and expectations to w.
func (w *workload) merge(o *workload) {
	w.events = append(w.events, o.events...)
	for k, n := range o.want {
		w.want[k] += n
	}
	for id := range o.ids {
		w.ids[id] = true
	}
	w.total += o.total
}

// publish produces every event of w, in one batch.
func (w *workload) publish(t testing.TB, env *devEnv) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs := make([]queue.Message, len(w.events))
	for i, ev := range w.events {
		msgs[i] = queue.Message{Topic: env.cfg.EventsTopic, Key: ev.Key, Value: ev.Value}
	}
	if err := env.prod.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
}

// tally compares what the sinks accepted with what w expects.
//
// Per channel and address, a surplus is a duplicate and a shortfall a loss;
// emails are also checked by Message-ID, which carries the notification id,
// so that a duplicate cannot hide behind a loss at the same address.
type tally struct {
	expected, delivered, duplicated, lost, unexpected int
	// which names the duplicated addresses and email ids, so that a
	// failure says where to look.
	which []string
}

func (c tally) String() string {
	s := fmt.Sprintf("expected %d, delivered %d, duplicated %d, lost %d, unexpected %d",
		c.expected, c.delivered, c.duplicated, c.lost, c.unexpected)
	if len(c.which) > 0 {
		s += " (twice or more: " + strings.Join(c.which, ", ") + ")"
	}
	return s
}

func count(env *devEnv, w *workload) tally {
	c := tally{expected: w.total}
	got := map[addrKey]int{}
	byID := map[string]int{}
	for _, d := range env.outbox.All() {
		c.delivered++
		got[addrKey{d.Channel, d.To}]++
		if d.Channel == "email" {
			id := strings.TrimSuffix(strings.TrimPrefix(d.MessageID, "<"), ">")
			if i := strings.IndexByte(id, '@'); i >= 0 {
				id = id[:i]
			}
			byID[id]++
		}
	}
	for k, n := range w.want {
		switch g := got[k]; {
		case g > n:
			c.duplicated += g - n
			c.which = append(c.which, fmt.Sprintf("%s %s ×%d", k.channel, k.to, g))
		case g < n:
			c.lost += n - g
		}
	}
	for k, n := range got {
		if _, ok := w.want[k]; !ok {
			c.unexpected += n
		}
	}
	emailDup := 0
	for id, n := range byID {
		if n > 1 {
			emailDup += n - 1
			c.which = append(c.which, fmt.Sprintf("email id %s ×%d", id, n))
		}
		if !w.ids[id] {
			c.unexpected++
		}
	}
	// An email duplicate hidden by a loss at the same address.
	if emailDup > c.duplicated {
		c.duplicated = emailDup
	}
	sort.Strings(c.which)
	return c
}

// waitDelivered waits until the sinks accepted at least n messages and
// every group has committed to the end of its topics, so nothing more can
// arrive, then returns the tally.
func waitDelivered(t *testing.T, env *devEnv, w *workload, timeout time.Duration) tally {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := env.outbox.Wait(ctx, w.total); err != nil {
		t.Errorf("delivered %d of %d: %v", env.outbox.Len(), w.total, err)
		return count(env, w)
	}
	waitDrained(t, env)
	return count(env, w)
}

// assertExactlyOnce logs the tally and fails the test unless every expected
// message was delivered exactly once and nothing else was.
func assertExactlyOnce(t testing.TB, name string, c tally) {
	t.Helper()
	t.Logf("%s: %s", name, c)
	if c.duplicated != 0 || c.lost != 0 || c.unexpected != 0 || c.delivered != c.expected {
		t.Errorf("%s: want every message exactly once: %s", name, c)
	}
}

// freeAddr returns a loopback address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// toolEnv is the environment an operator command (herald trace, dlq) sees
// for env's fleet: its brokers, events topic and Redis.
func toolEnv(env *devEnv, redis *redistest.Server) func(string) string {
	vars := map[string]string{
		"HERALD_KAFKA_BROKERS": strings.Join(env.brokers(), ","),
		"HERALD_EVENTS_TOPIC":  env.cfg.EventsTopic,
		"HERALD_REDIS_URL":     redis.URL(),
	}
	return func(k string) string { return vars[k] }
}

// fromKafka is a record read with readAll as the queue.Message herald's
// decoders take.
func fromKafka(k kafka.Message) *queue.Message {
	m := &queue.Message{Topic: k.Topic, Partition: k.Partition, Offset: k.Offset, Key: k.Key, Value: k.Value}
	for _, h := range k.Headers {
		m.Headers = append(m.Headers, queue.Header{Key: h.Key, Value: h.Value})
	}
	return m
}

// TestWorkloadExpectsWhatTheFleetSends plans a workload a moment before
// Madrid's quiet hours end (07:00 there, 06:00 UTC in December) and checks
// its expectation against a plan made after they ended, as the fleet's
// dispatcher may: the two must agree, though the same events planned
// naively do not.
func TestWorkloadExpectsWhatTheFleetSends(t *testing.T) {
	before := time.Date(2026, 12, 7, 5, 59, 30, 0, time.UTC)
	after := before.Add(2 * time.Minute)
	opts := sim.Options{Seed: 11, Members: 40, Prefix: "os"}
	w := newWorkloadAt(t, func() time.Time { return before }, sim.New(opts), 50)

	planned := func(at time.Time, evs []sim.Event) map[addrKey]int {
		p := *w.planner
		p.Now = func() time.Time { return at }
		want := map[addrKey]int{}
		for _, ev := range evs {
			ns, err := p.Plan(ev.Value)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range ns {
				want[addrKey{string(n.Channel), n.To}]++
			}
		}
		return want
	}
	if len(w.events) != 50 {
		t.Fatalf("%d events; want 50", len(w.events))
	}
	if got := planned(after, w.events); !maps.Equal(got, w.want) {
		t.Errorf("the workload expects %v; planned at %s the same events send %v", w.want, after.Format(time.TimeOnly), got)
	}

	g := sim.New(opts)
	naive := make([]sim.Event, 50)
	for i := range naive {
		naive[i] = g.Next()
	}
	if maps.Equal(planned(before, naive), planned(after, naive)) {
		t.Fatal("no event's plan changes at 06:00 UTC: this test checks nothing")
	}
}
