package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/gymhq/herald/channels/inapp"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gymhq/herald/address"
	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/dlq"
	"github.com/gymhq/herald/internal/poll"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/pipeline"
	"github.com/gymhq/herald/prefs"
	"github.com/gymhq/herald/protect"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/sinks"
	"github.com/gymhq/herald/suppress"
	"github.com/gymhq/herald/topics"
)

// member is who a crafted event is about.
type member struct{ id, email, phone, token string }

// memberEvent builds an event of typ (booking.confirmed: email + push;
// waitlist.promoted: SMS + push) for m from the testdata sample.
func memberEvent(t *testing.T, typ, id string, m member) []byte {
	t.Helper()
	file := map[string]string{"gym.booking.confirmed": "booking_confirmed", "gym.waitlist.promoted": "waitlist_promoted", "gym.class.cancelled": "class_cancelled"}[typ]
	b, err := os.ReadFile("../../events/testdata/" + file + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	ev["id"] = id
	data := ev["data"].(map[string]any)
	person := map[string]any{"id": m.id, "name": "Ana Test", "email": m.email, "phone": m.phone, "locale": "en-GB",
		"time_zone": "Europe/London", "push_tokens": []string{m.token}}
	if typ == "gym.class.cancelled" {
		data["attendees"] = []any{person} // m alone
	} else {
		data["member"] = person
	}
	out, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func publish(t *testing.T, env *devEnv, values ...[]byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, v := range values {
		if err := env.publishEvent(ctx, []byte("cls_e2e"), v); err != nil {
			t.Fatal(err)
		}
	}
}

func deliveredTo(o *sinks.Outbox, to string) int {
	n := 0
	for _, d := range o.All() {
		if d.To == to {
			n++
		}
	}
	return n
}

// TestSuppressionEndToEnd: each provider's "never again" answer — Twilio
// 21610, FCM UNREGISTERED, SMTP 550 5.1.1 — puts the address on the Redis
// suppression list; the next event for the same member sends nothing to
// those addresses even though the providers would now accept them; the list
// is visible masked; removing an address lets the next message through.
func TestSuppressionEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	rs := redistest.Start(t)
	env, logs := newTestEnv(t, 3, rs)
	ana := member{id: "mem_sup_1", email: "ana.gone@example.com", phone: "+447700900555", token: "fcm_token_gone_0001"}
	env.twilio.FailNumber(ana.phone, 400, 21610, "Attempt to send to unsubscribed recipient")
	env.fcm.Unregister(ana.token)
	if err := env.smtp.FailAddress(ana.email, 550, "5.1.1", "<"+ana.email+">: Recipient address rejected: User unknown"); err != nil {
		t.Fatal(err)
	}
	startFleet(t, env)
	list := suppress.NewRedis(rs.Client(), "", nil)
	ctx := context.Background()

	publish(t, env, memberEvent(t, "gym.booking.confirmed", "evt_sup_1", ana), memberEvent(t, "gym.waitlist.promoted", "evt_sup_2", ana))
	poll.Until(t, time.Minute, "three suppressions", func() bool {
		es, err := list.List(ctx, "")
		return err == nil && len(es) == 3
	})
	waitDrained(t, env)
	es, _ := list.List(ctx, "")
	want := map[string]string{"email": "invalid_address", "push": "token_unregistered", "sms": "unsubscribed"}
	for _, e := range es {
		if want[e.Channel] != e.Reason {
			t.Errorf("suppression %s %s: reason %s, want %s", e.Channel, obs.MaskAddress(e.Channel, e.Address), e.Reason, want[e.Channel])
		}
	}

	// The providers would accept them now: only the list stops the sends.
	env.twilio.FailNumber(ana.phone, 0, 0, "")
	env.fcm.FailToken(ana.token, 0, "")
	env.smtp.ClearFaults()
	m := env.fleet.metrics
	suppressedSoFar := func() float64 {
		n := 0.0
		for ch, r := range want {
			n += testutil.ToFloat64(m.Notifications.WithLabelValues(ch, obs.OutcomeSuppressed, r))
		}
		return n
	}
	// The second event's push may already have been suppressed by the first
	// event's UNREGISTERED (they share a partition and key, in order).
	base := suppressedSoFar()
	before := providerDeliveries(env)
	publish(t, env, memberEvent(t, "gym.booking.confirmed", "evt_sup_3", ana), memberEvent(t, "gym.waitlist.promoted", "evt_sup_4", ana))
	defer func() {
		if t.Failed() {
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, "outcome") || strings.Contains(l, "suppress") {
					t.Log(l)
				}
			}
		}
	}()
	// Three: the STOP also turned Ana's SMS off in her preferences, so the
	// second waitlist event plans no SMS at all.
	poll.Until(t, time.Minute, "three suppressed notifications", func() bool {
		n := suppressedSoFar() - base
		if n > 3 {
			t.Fatalf("%v suppressed", n)
		}
		return n == 3
	})
	store := prefs.NewRedis(rs.Client(), "")
	if p, err := store.Get(ctx, ana.id); err != nil || p.Channels == nil || p.Channels[notification.SMS] || len(p.Channels) != 1 {
		t.Fatalf("after STOP, Ana's stored preferences %+v (%v); want sms off", p, err)
	}
	waitDrained(t, env)
	if providerDeliveries(env) != before {
		t.Fatalf("%d messages delivered to suppressed addresses", providerDeliveries(env)-before)
	}

	// Operators see them masked, and can lift one.
	var out bytes.Buffer
	if err := listSuppressions(ctx, &out, list, "", false, false); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{ana.email, ana.phone, ana.token} {
		if strings.Contains(out.String(), a) {
			t.Errorf("list shows %q unmasked:\n%s", a, out.String())
		}
	}
	if !strings.Contains(out.String(), "3 suppressed") || !strings.Contains(out.String(), address.MaskPhone(ana.phone)) {
		t.Errorf("list output:\n%s", out.String())
	}
	out.Reset()
	if err := removeSuppression(ctx, &out, list, "", ana.phone); err != nil {
		t.Fatal(err)
	}
	// She texts START and the booking service's app turns SMS back on.
	if _, err := store.Update(ctx, ana.id, func(p *prefs.Prefs) error {
		p.Channels = map[notification.Channel]bool{notification.SMS: true}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	publish(t, env, memberEvent(t, "gym.waitlist.promoted", "evt_sup_5", ana))
	poll.Until(t, time.Minute, "the SMS after removal", func() bool { return deliveredTo(env.outbox, ana.phone) == 1 })
	waitDrained(t, env)
	if n := deliveredTo(env.outbox, ana.token) + deliveredTo(env.outbox, ana.email); n != 0 {
		t.Errorf("%d deliveries to still-suppressed addresses", n)
	}
	if strings.Contains(logs.String(), ana.phone) || strings.Contains(logs.String(), ana.email) {
		t.Error("logs contain an unmasked suppressed address")
	}
}

// TestDLQReplayTwiceDeliversOnce: notifications that failed permanently
// (Twilio 21408, not a suppressing code) and a garbled DLQ record; after the
// fault is fixed, replaying the DLQ twice delivers each failed notification
// exactly once, the garbled record is reported and skipped, and inspect
// summarises the DLQ with masked addresses.
func TestDLQReplayTwiceDeliversOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	rs := redistest.Start(t)
	env, _ := newTestEnv(t, 3, rs)
	const n = 6
	var people []member
	for i := range n {
		people = append(people, member{id: fmt.Sprintf("mem_rp_%d", i), email: fmt.Sprintf("rp%d@example.com", i),
			phone: fmt.Sprintf("+4477009006%02d", i), token: fmt.Sprintf("fcm_rp_%02d", i)})
		env.twilio.FailNumber(people[i].phone, 400, 21408, "Permission to send an SMS has not been enabled for the region")
	}
	startFleet(t, env)
	for i, p := range people {
		publish(t, env, memberEvent(t, "gym.waitlist.promoted", fmt.Sprintf("evt_rp_%d", i), p))
	}
	// A record on the DLQ that herald did not write. The dev producer's
	// metadata may predate herald's topics until its next refresh.
	poll.Until(t, time.Minute, "a junk record on the DLQ", func() bool {
		return env.prod.Publish(context.Background(), queueMessage(topics.DLQ, "junk", "{not a dead letter")) == nil
	})
	poll.Until(t, time.Minute, "the failures in the DLQ", func() bool {
		return testutil.ToFloat64(env.fleet.metrics.DLQWrites.WithLabelValues("sms", "rejected")) == n
	})
	waitDrained(t, env)
	for _, p := range people {
		if deliveredTo(env.outbox, p.phone) != 0 {
			t.Fatal("an SMS was delivered despite the fault")
		}
	}

	var out bytes.Buffer
	if err := dlqInspect(context.Background(), &out, toolKafka{brokers: env.brokers()}, 5, false); err != nil {
		t.Fatal(err)
	}
	t.Logf("inspect:\n%s", out.String())
	for _, want := range []string{fmt.Sprintf("%d dead letters (1 malformed", n+1), "rejected=6", "sms=6", "to=+44"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("inspect output lacks %q", want)
		}
	}
	for _, p := range people {
		if strings.Contains(out.String(), p.phone) {
			t.Errorf("inspect shows %s unmasked", p.phone)
		}
	}

	out.Reset()
	if err := dlqInspect(context.Background(), &out, toolKafka{brokers: env.brokers()}, 5, true); err != nil {
		t.Fatal(err)
	}
	var sum dlq.Summary
	if err := json.Unmarshal(out.Bytes(), &sum); err != nil {
		t.Fatalf("inspect --json is not JSON: %v\n%s", err, out.String())
	}
	if sum.Total != n+1 || sum.Malformed != 1 || sum.ByReason["rejected"] != n {
		t.Errorf("inspect --json: %+v", sum)
	}

	// Fix the fault; a dry run sends nothing.
	for _, p := range people {
		env.twilio.FailNumber(p.phone, 0, 0, "")
	}
	out.Reset()
	rep, err := dlqReplay(context.Background(), &out, toolKafka{brokers: env.brokers()}, replayOptions{DryRun: true, EventsTopic: env.cfg.EventsTopic})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Replayed[topics.Channel(notification.SMS)] != n || rep.Skipped != 1 {
		t.Errorf("dry run: %+v\n%s", rep, out.String())
	}
	waitDrained(t, env)
	if providerDeliveries(env) != n { // only the n pushes so far
		t.Fatalf("dry run delivered something: outbox %d", providerDeliveries(env))
	}

	for round := 1; round <= 2; round++ {
		out.Reset()
		rep, err := dlqReplay(context.Background(), &out, toolKafka{brokers: env.brokers()}, replayOptions{Filter: dlq.Filter{Reason: "rejected"}, EventsTopic: env.cfg.EventsTopic})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("replay %d: %s", round, strings.TrimSpace(out.String()))
		if rep.Replayed[topics.Channel(notification.SMS)] != n || rep.Skipped != 1 {
			t.Errorf("replay %d: %+v", round, rep)
		}
		if !strings.Contains(out.String(), "malformed DLQ record") {
			t.Errorf("the garbled record was not reported:\n%s", out.String())
		}
		poll.Until(t, time.Minute, "the replayed SMS", func() bool {
			for _, p := range people {
				if deliveredTo(env.outbox, p.phone) < 1 {
					return false
				}
			}
			return true
		})
		waitDrained(t, env)
	}
	for _, p := range people {
		if got := deliveredTo(env.outbox, p.phone); got != 1 {
			t.Errorf("%s: delivered %d times after two replays, want 1", address.MaskPhone(p.phone), got)
		}
	}
	if got := testutil.ToFloat64(env.fleet.metrics.DedupeHits.WithLabelValues("sms", "sent")); got < n {
		t.Errorf("second replay: %v duplicates recognised, want %d", got, n)
	}
}

// countingSender counts provider calls.
type countingSender struct {
	next  channels.Sender
	calls atomic.Int64
}

func (c *countingSender) Send(ctx context.Context, m *channels.Message) (channels.Receipt, error) {
	c.calls.Add(1)
	return c.next.Send(ctx, m)
}
func (c *countingSender) Close() error { return c.next.Close() }

// TestBreakerPausesConsumption: the SMTP server goes down; after a few
// failures the email breaker opens and the email channel stops consuming:
// while it is open the only provider calls are the half-open probes, and no
// retry is spent (nothing dead-lettered, at most the tripping failures on
// the retry topic). When the server returns, a probe closes the breaker and
// every email is delivered exactly once.
func TestBreakerPausesConsumption(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	env, err := newDevEnv(devOptions{KafkaAddr: "127.0.0.1:0", Partitions: 3, Log: jsonLogger(&syncBuffer{})})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	// A quick breaker for the test, made the way buildFleet makes it.
	env.cfg.BreakerFailures, env.cfg.BreakerOpenFor = 3, 250*time.Millisecond
	counter := &countingSender{next: env.fleet.senders[notification.Email]}
	env.fleet.senders[notification.Email] = counter
	g, err := env.fleet.guard(env.fleet.common(nil), notification.Email)
	if err != nil {
		t.Fatal(err)
	}
	b := g.(*pipeline.Breaker).Breaker
	m := env.fleet.metrics.Protect
	halfOpens := func() float64 { return testutil.ToFloat64(m.BreakerTransitions.WithLabelValues("email", "half-open")) }

	if err := env.smtp.Refuse(true); err != nil {
		t.Fatal(err)
	}
	startFleet(t, env)
	const n = 20
	var people []member
	for i := range n {
		people = append(people, member{id: fmt.Sprintf("mem_br_%d", i), email: fmt.Sprintf("br%d@example.com", i),
			phone: fmt.Sprintf("+4477009007%02d", i), token: fmt.Sprintf("fcm_br_%02d", i)})
		publish(t, env, memberEvent(t, "gym.booking.confirmed", fmt.Sprintf("evt_br_%d", i), people[i]))
	}
	poll.Until(t, time.Minute, "the breaker to open", func() bool { return b.State() == protect.Open })
	if g := testutil.ToFloat64(m.BreakerState.WithLabelValues("email")); g != float64(protect.Open) {
		t.Errorf("breaker state gauge = %v while open", g)
	}
	atOpen := counter.calls.Load()
	probesAtOpen := halfOpens()
	// Stay down for several open periods.
	poll.Until(t, time.Minute, "three probes", func() bool { return halfOpens() >= probesAtOpen+3 })
	whileOpen := counter.calls.Load() - atOpen
	probes := int64(halfOpens() - probesAtOpen)
	if whileOpen > probes {
		t.Errorf("%d provider calls while open, more than the %d probes", whileOpen, probes)
	}
	t.Logf("provider down: %d calls before the breaker opened, %d calls over %d open periods (probes only)", atOpen, whileOpen, probes)
	// Only a record whose send really reached the provider (a tripping
	// failure, or a failed probe) climbs the retry ladder; the rest wait.
	retries := len(readAll(t, env.brokers(), topics.Retry(notification.Email)))
	if calls := counter.calls.Load(); retries > int(calls) {
		t.Errorf("%d records on the retry topic, more than the %d failed calls", retries, calls)
	}
	if got := testutil.ToFloat64(env.fleet.metrics.DLQWrites.WithLabelValues("email", "exhausted")); got != 0 {
		t.Errorf("%v emails dead-lettered during the outage", got)
	}

	if err := env.smtp.Refuse(false); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, time.Minute, "every email", func() bool {
		for _, p := range people {
			if deliveredTo(env.outbox, p.email) < 1 {
				return false
			}
		}
		return true
	})
	waitDrained(t, env)
	if b.State() != protect.Closed || testutil.ToFloat64(m.BreakerState.WithLabelValues("email")) != float64(protect.Closed) {
		t.Errorf("breaker %v (gauge %v) after recovery", b.State(), testutil.ToFloat64(m.BreakerState.WithLabelValues("email")))
	}
	for _, p := range people {
		if got := deliveredTo(env.outbox, p.email); got != 1 {
			t.Errorf("%s delivered %d times", address.MaskEmail(p.email), got)
		}
	}
	if d := env.fleet.store.(*dedupe.Memory).DuplicateSends(); d != 0 {
		t.Errorf("%d duplicate sends", d)
	}
	t.Logf("after recovery: %d emails delivered once each; %d records went to the retry topic", n, retries)
}

func queueMessage(topic, key, value string) queue.Message {
	return queue.Message{Topic: topic, Key: []byte(key), Value: []byte(value),
		Headers: []queue.Header{{Key: dlq.HeaderReason, Value: []byte("decode")}}}
}

// TestSendRateIsHonoured: with HERALD_SMS_RATE set, the SMS channel (rate
// state in Redis) waits rather than drops: every SMS arrives once, sends
// waited, and the arrivals at the provider fit the GCRA bound rate·span +
// burst (a count over the observed span, not a speed).
func TestSendRateIsHonoured(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	rs := redistest.Start(t)
	env, _ := newTestEnv(t, 3, rs)
	const rate, n = 10, 30
	env.fleet.prot.limiters[notification.SMS] = newLimiter(notification.SMS, rate, rs.Client())
	startFleet(t, env)
	var people []member
	for i := range n {
		p := member{id: fmt.Sprintf("mem_rt_%d", i), email: fmt.Sprintf("rt%d@example.com", i),
			phone: fmt.Sprintf("+4477009008%02d", i), token: fmt.Sprintf("fcm_rt_%02d", i)}
		people = append(people, p)
		publish(t, env, memberEvent(t, "gym.waitlist.promoted", fmt.Sprintf("evt_rt_%d", i), p))
	}
	poll.Until(t, time.Minute, "every SMS", func() bool {
		for _, p := range people {
			if deliveredTo(env.outbox, p.phone) < 1 {
				return false
			}
		}
		return true
	})
	waitDrained(t, env)
	var first, last time.Time
	sms := 0
	for _, d := range env.outbox.All() {
		if d.Channel != "sms" {
			continue
		}
		sms++
		if first.IsZero() || d.At.Before(first) {
			first = d.At
		}
		if d.At.After(last) {
			last = d.At
		}
	}
	span := last.Sub(first)
	bound := int(float64(rate)*span.Seconds()) + rate + 2 // +2: arrival jitter after admission
	t.Logf("%d SMS at %d/s arrived over %v (bound %d); %v sends waited", sms, rate, span.Round(time.Millisecond), bound,
		testutil.ToFloat64(env.fleet.metrics.Protect.RateLimitWaits.WithLabelValues("sms")))
	if sms != n {
		t.Errorf("%d SMS delivered, want %d", sms, n)
	}
	if sms > bound {
		t.Errorf("%d SMS arrived within %v: over the rate bound %d", sms, span, bound)
	}
	if testutil.ToFloat64(env.fleet.metrics.Protect.RateLimitWaits.WithLabelValues("sms")) == 0 {
		t.Error("no send waited for the rate limit")
	}
}

// providerDeliveries counts what the providers' stand-ins accepted: the
// outbox without the in-app feeds, which no suppression or DLQ test here
// is about (a feed is addressed by person id and has no provider to fail).
func providerDeliveries(env *devEnv) int {
	n := 0
	for _, d := range env.outbox.All() {
		if d.Channel != string(inapp.Name) {
			n++
		}
	}
	return n
}
