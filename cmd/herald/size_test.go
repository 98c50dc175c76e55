package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/gymhq/herald/dlq"
	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/internal/poll"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/sim"
	"github.com/gymhq/herald/topics"
)

// withNote returns ev with a free-text field data.note of n bytes of fill,
// encoded as a booking service that does not escape HTML would send it
// (kcat, most non-Go producers): each '<' is one byte on the wire.
func withNote(t testing.TB, ev sim.Event, fill string, n int) sim.Event {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(ev.Value, &m); err != nil {
		t.Fatal(err)
	}
	m["data"].(map[string]any)["note"] = strings.Repeat(fill, n/len(fill))
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		t.Fatal(err)
	}
	ev.Value = bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	return ev
}

// alterTopic sets one topic config on the broker, as an operator would.
func alterTopic(t testing.TB, env *devEnv, topic, name, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := &kafka.Client{Addr: kafka.TCP(env.brokers()...)}
	resp, err := client.AlterConfigs(ctx, &kafka.AlterConfigsRequest{Resources: []kafka.AlterConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic,
		Configs: []kafka.AlterConfigRequestConfig{{Name: name, Value: value}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range resp.Errors {
		if e != nil {
			t.Fatal(e)
		}
	}
}

// TestLargeEventDoesNotBlockItsPartition is issue 10's reproduction: a
// gym.booking.confirmed of about 200 KB whose free text is all '<' used to
// become a notification of about 1.2 MB (json.Marshal writes each '<' as
// \u003c), which the producer refused as Message Size Too Large; the
// dispatcher returned the error, the runtime retried it for ever, and the
// next event with the same key was never delivered. Now the notification
// is about as big as the event, and both events are delivered once.
func TestLargeEventDoesNotBlockItsPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("fleet")
	}
	redis := redistest.Start(t)
	env, _ := newTestEnv(t, 3, redis)
	startFleet(t, env)

	g := sim.New(sim.Options{Seed: 31, Members: 20, Prefix: "big"})
	big := withNote(t, g.Make("gym.booking.confirmed"), "<", 200_000)
	next := g.Make("gym.booking.confirmed")
	next.Key = big.Key // same class, same partition, behind the big one
	t.Logf("event of %d bytes", len(big.Value))

	w := newWorkload(t, nil, 0)
	w.add(t, big)
	w.add(t, next)
	w.publish(t, env)
	assertExactlyOnce(t, "a 200 KB event of '<' and the event behind it", waitDelivered(t, env, w, 60*time.Second))
	if dead := readAll(t, env.brokers(), topics.DLQ); len(dead) != 0 {
		t.Errorf("%d DLQ records, want none", len(dead))
	}
}

// TestRefusedNotificationDeadLettersItsEvent: a notification the broker
// refuses as too large (herald.push.v1 limited to 32 KiB by its operator)
// is permanent. The event goes to herald.dlq.v1 with reason too_large, the
// notifications that were accepted are delivered, and the valid event with
// the same key behind it is delivered: the partition moves on. The DLQ
// topic is limited too, so the DLQ record itself is refused whole and is
// written cut down, still with its reason.
func TestRefusedNotificationDeadLettersItsEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("fleet")
	}
	redis := redistest.Start(t)
	env, _ := newTestEnv(t, 3, redis)
	startFleet(t, env)
	alterTopic(t, env, topics.Channel(notification.Push), "max.message.bytes", "32768")
	alterTopic(t, env, topics.DLQ, "max.message.bytes", "49152")

	g := sim.New(sim.Options{Seed: 37, Members: 20, Prefix: "refused"})
	var poison sim.Event
	var pushTo []string
	spare := newWorkload(t, nil, 0)
	for i := 0; i < 50 && len(pushTo) == 0; i++ { // a member with a push token
		poison = withNote(t, g.Make("gym.booking.confirmed"), "x", 60_000)
		ns, err := spare.planner.Plan(poison.Value)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range ns {
			if n.Channel == notification.Push {
				pushTo = append(pushTo, n.To)
			}
		}
	}
	if len(pushTo) == 0 {
		t.Fatal("no member with a push token")
	}
	next := g.Make("gym.booking.confirmed")
	next.Key = poison.Key

	w := newWorkload(t, nil, 0)
	w.add(t, poison, pushTo...) // its email is accepted and delivered
	w.add(t, next)
	w.publish(t, env)
	assertExactlyOnce(t, "the event behind a refused notification", waitDelivered(t, env, w, 60*time.Second))

	dead := readAll(t, env.brokers(), topics.DLQ)
	if len(dead) != 1 {
		t.Fatalf("%d DLQ records, want 1", len(dead))
	}
	h := map[string]string{}
	for _, x := range dead[0].Headers {
		h[x.Key] = string(x.Value)
	}
	if h[dlq.HeaderStage] != "dispatcher" || h[dlq.HeaderReason] != "too_large" || h[dlq.HeaderClass] != "permanent" {
		t.Errorf("DLQ record stage %q reason %q class %q, want dispatcher too_large permanent (error: %s)",
			h[dlq.HeaderStage], h[dlq.HeaderReason], h[dlq.HeaderClass], h[dlq.HeaderError])
	}
	if h[dlq.HeaderTruncated] == "" || len(dead[0].Value) >= len(poison.Value) {
		t.Errorf("DLQ record of %d bytes (truncated header %q), want it cut to fit the DLQ topic", len(dead[0].Value), h[dlq.HeaderTruncated])
	}
	t.Logf("DLQ: %s/%s %q, value %d of %d bytes", h[dlq.HeaderStage], h[dlq.HeaderReason], h[dlq.HeaderError], len(dead[0].Value), len(poison.Value))
}

// sized returns ev with a free-text note of '<' making it exactly size
// bytes on the wire.
func sized(t testing.TB, ev sim.Event, size int) sim.Event {
	t.Helper()
	base := withNote(t, ev, "<", 0)
	out := withNote(t, ev, "<", size-len(base.Value))
	if len(out.Value) != size {
		t.Fatalf("built an event of %d bytes, want %d", len(out.Value), size)
	}
	return out
}

// TestEventSizeEdges runs the size limits end to end (docs/resilience.md,
// "Size limits"): an event of exactly events.MaxEventSize is delivered; one
// byte more is dead-lettered whole (reason decode) and so is an invalid
// event of exactly the limit; and the valid event with the same key
// behind each is delivered.
func TestEventSizeEdges(t *testing.T) {
	if testing.Short() {
		t.Skip("fleet")
	}
	redis := redistest.Start(t)
	env, _ := newTestEnv(t, 3, redis)
	startFleet(t, env)

	g := sim.New(sim.Options{Seed: 41, Members: 20, Prefix: "edge"})
	atLimit := sized(t, g.Make("gym.booking.confirmed"), events.MaxEventSize)
	over := sized(t, g.Make("gym.booking.confirmed"), events.MaxEventSize+1)
	invalid := g.Make("gym.waitlist.promoted")
	// Invalid as an event (a bad address would cost only its message).
	valid := invalid.Value
	invalid.Value = bytes.Replace(invalid.Value, []byte(`"specversion":"1.0"`), []byte(`"specversion":"0.3"`), 1)
	if bytes.Equal(valid, invalid.Value) {
		t.Fatal("the simulator's event has no specversion 1.0 to spoil")
	}
	invalid = sized(t, invalid, events.MaxEventSize)

	w := newWorkload(t, nil, 0)
	var order []sim.Event
	for _, ev := range []sim.Event{atLimit, over, invalid} {
		next := g.Make("gym.booking.confirmed")
		next.Key = ev.Key
		order = append(order, ev, next)
		w.add(t, next)
	}
	w.add(t, atLimit)
	w.events = order
	w.publish(t, env)
	assertExactlyOnce(t, "events at and over the size limit", waitDelivered(t, env, w, 60*time.Second))

	dead := readAll(t, env.brokers(), topics.DLQ)
	if len(dead) != 2 {
		t.Fatalf("%d DLQ records, want 2", len(dead))
	}
	for _, d := range dead {
		h := map[string]string{}
		for _, x := range d.Headers {
			h[x.Key] = string(x.Value)
		}
		whole := bytes.Equal(d.Value, over.Value) || bytes.Equal(d.Value, invalid.Value)
		if !whole || h[dlq.HeaderTruncated] != "" || h[dlq.HeaderStage] != "dispatcher" {
			t.Errorf("DLQ record of %d bytes (stage %q, truncated %q), want one of the refused events whole", len(d.Value), h[dlq.HeaderStage], h[dlq.HeaderTruncated])
		}
		t.Logf("DLQ: %s/%s, %d bytes: %s", h[dlq.HeaderStage], h[dlq.HeaderReason], len(d.Value), h[dlq.HeaderError])
	}
}

// stalled returns the largest herald_partition_stalled_seconds of group
// on topic.
func stalled(t testing.TB, env *devEnv, group, topic string) float64 {
	t.Helper()
	mfs, err := env.fleet.metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	most := -1.0
	for _, f := range mfs {
		if f.GetName() != "herald_partition_stalled_seconds" {
			continue
		}
	next:
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == "group" && l.GetValue() != group || l.GetName() == "topic" && l.GetValue() != topic {
					continue next
				}
			}
			most = max(most, m.GetGauge().GetValue())
		}
	}
	return most
}

// TestStuckRecordSurfaces: a record that keeps failing for a reason that
// does not pass by itself — here the DLQ topic refuses even the smallest
// DLQ record, so a poison event can be neither handled nor dead-lettered —
// holds its partition while /healthz stays green (handler calls keep
// finishing). herald_partition_stalled_seconds shows it, growing, and
// returns to 0 once the operator fixes the topic and the partition moves.
func TestStuckRecordSurfaces(t *testing.T) {
	if testing.Short() {
		t.Skip("fleet")
	}
	redis := redistest.Start(t)
	env, _ := newTestEnv(t, 3, redis)
	env.fleet.live.LagEvery = 100 * time.Millisecond
	startFleet(t, env)
	alterTopic(t, env, topics.DLQ, "max.message.bytes", "100")

	g := sim.New(sim.Options{Seed: 43, Members: 20, Prefix: "stuck"})
	good := g.Make("gym.booking.confirmed")
	w := newWorkload(t, nil, 0)
	w.add(t, good)
	w.events = []sim.Event{{Key: good.Key, Value: []byte(`{"specversion":"1.0",`)}, good}
	w.publish(t, env)

	poll.Until(t, 30*time.Second, "herald_partition_stalled_seconds over 2s for the dispatcher", func() bool {
		return stalled(t, env, topics.GroupDispatch, env.cfg.EventsTopic) > 2
	})
	if err := env.fleet.live.Check(); err != nil {
		t.Logf("liveness: %v", err)
	} else {
		t.Log("liveness: healthy while the partition is stuck")
	}
	first := stalled(t, env, topics.GroupDispatch, env.cfg.EventsTopic)
	poll.Until(t, 10*time.Second, "the stall to grow", func() bool {
		return stalled(t, env, topics.GroupDispatch, env.cfg.EventsTopic) > first+0.5
	})
	if env.outbox.Len() != 0 {
		t.Errorf("%d deliveries from behind the stuck record", env.outbox.Len())
	}

	alterTopic(t, env, topics.DLQ, "max.message.bytes", "1048588")
	assertExactlyOnce(t, "the event behind the stuck record, once the DLQ takes it", waitDelivered(t, env, w, 60*time.Second))
	poll.Until(t, 10*time.Second, "herald_partition_stalled_seconds back to 0", func() bool {
		return stalled(t, env, topics.GroupDispatch, env.cfg.EventsTopic) == 0
	})
}
