package worker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/dlq"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/suppress"
	"github.com/gymhq/herald/topics"
	"github.com/gymhq/herald/worker"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func newGuardedWorker(t *testing.T, s *sender, store dedupe.Store, list suppress.Store, p *publisher, m *obs.Metrics) *worker.Worker {
	t.Helper()
	w, err := worker.New(worker.Config{Channel: notification.SMS, Sender: s, Renderer: renderer{}, Store: store, Publisher: p,
		Suppressions: list, Owner: "w1", Lease: 2 * time.Second, SendTimeout: time.Second, MaxAttempts: 3, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestSuppressionFedAndHonoured: Twilio 21610 on one notification suppresses
// the number; the next notification to it is not sent, gets the durable
// outcome "suppressed", and a redelivery of it is a duplicate.
func TestSuppressionFedAndHonoured(t *testing.T) {
	ctx := context.Background()
	store := dedupe.NewMemory(dedupe.Options{})
	list := suppress.NewMemory(nil)
	m := obs.NewMetrics()
	s := &sender{script: []error{failure.Perm(failure.ReasonUnsubscribed, errors.New("twilio error 21610"))}}
	p := &publisher{}
	w := newGuardedWorker(t, s, store, list, p, m)

	first := note(0)
	if err := w.Handle(ctx, record(t, first)); err != nil {
		t.Fatal(err)
	}
	if len(p.on(topics.DLQ)) != 1 {
		t.Fatalf("DLQ records = %d, want 1", len(p.on(topics.DLQ)))
	}
	e, ok, err := list.Lookup(ctx, "sms", first.To)
	if err != nil || !ok || e.Reason != "unsubscribed" {
		t.Fatalf("suppression after 21610 = %+v, %v, %v", e, ok, err)
	}
	if got := testutil.ToFloat64(m.Protect.Suppressions.WithLabelValues("sms", "unsubscribed")); got != 1 {
		t.Errorf("suppressions metric = %v", got)
	}

	next := note(0)
	next.EventID = "evt_2"
	next.ID = notification.NewID(next.EventID, next.Template, next.Channel, next.RecipientID, next.To)
	calls := s.calls
	for range 2 { // the second is a redelivery
		if err := w.Handle(ctx, record(t, next)); err != nil {
			t.Fatal(err)
		}
	}
	if s.calls != calls {
		t.Fatalf("provider called %d times for a suppressed number", s.calls-calls)
	}
	c, _ := store.Get(ctx, next.ID)
	if c.State != dedupe.StateFailed || c.Reason != obs.OutcomeSuppressed {
		t.Errorf("key of suppressed notification = %+v", c)
	}
	if got := testutil.ToFloat64(m.Notifications.WithLabelValues("sms", obs.OutcomeSuppressed, "unsubscribed")); got != 1 {
		t.Errorf("suppressed outcomes = %v, want 1 (the redelivery is a duplicate)", got)
	}
	if len(p.on(topics.DLQ)) != 1 {
		t.Errorf("a suppressed notification went to the DLQ")
	}

	// An operator lifts it: the next one goes out.
	if _, err := list.Remove(ctx, "sms", first.To); err != nil {
		t.Fatal(err)
	}
	third := note(0)
	third.EventID = "evt_3"
	third.ID = notification.NewID(third.EventID, third.Template, third.Channel, third.RecipientID, third.To)
	if err := w.Handle(ctx, record(t, third)); err != nil {
		t.Fatal(err)
	}
	if c, _ := store.Get(ctx, third.ID); c.State != dedupe.StateSent {
		t.Errorf("after removal the notification was not sent: %+v", c)
	}
}

// TestRetryableFailuresDoNotSuppress: only the feeding reasons suppress.
func TestRetryableFailuresDoNotSuppress(t *testing.T) {
	ctx := context.Background()
	list := suppress.NewMemory(nil)
	s := &sender{script: []error{failure.Perm(failure.ReasonRejected, errors.New("21408"))}}
	w := newGuardedWorker(t, s, dedupe.NewMemory(dedupe.Options{}), list, &publisher{}, obs.NewMetrics())
	if err := w.Handle(ctx, record(t, note(0))); err != nil {
		t.Fatal(err)
	}
	if es, _ := list.List(ctx, ""); len(es) != 0 {
		t.Errorf("rejected (not about the address) suppressed: %+v", es)
	}
}

// TestPausedSendHasNoOutcome: a send held back by the breaker is not an
// attempt: the claim is given back, nothing goes to the retry topic or DLQ,
// and the runtime is told to keep the record.
func TestPausedSendHasNoOutcome(t *testing.T) {
	ctx := context.Background()
	store := dedupe.NewMemory(dedupe.Options{})
	s := &sender{script: []error{failure.Paused(failure.ReasonUnavailable, errors.New("circuit open"))}}
	p := &publisher{}
	w := newGuardedWorker(t, s, store, nil, p, obs.NewMetrics())
	n := note(0)
	err := w.Handle(ctx, record(t, n))
	if !failure.IsPaused(err) {
		t.Fatalf("Handle = %v, want the pause returned to the runtime", err)
	}
	if s.calls != 1 {
		t.Errorf("paused send retried in process: %d calls", s.calls)
	}
	if len(p.msgs) != 0 {
		t.Errorf("paused send published %d records", len(p.msgs))
	}
	if c, _ := store.Get(ctx, n.ID); c.State != dedupe.StateNone {
		t.Errorf("claim kept after a pause: %+v", c)
	}
	if err := w.Handle(ctx, record(t, n)); err != nil {
		t.Fatal(err)
	}
	if c, _ := store.Get(ctx, n.ID); c.State != dedupe.StateSent {
		t.Errorf("after the pause the record was not sent: %+v", c)
	}
}

// TestReplayRearmsFailedOnly: a replayed record re-arms a failed key and is
// sent; replaying it again finds it sent and does not send twice; a record
// without the replay header still obeys the failed key.
func TestReplayRearmsFailedOnly(t *testing.T) {
	ctx := context.Background()
	store := dedupe.NewMemory(dedupe.Options{})
	n := note(0)
	if _, err := store.Claim(ctx, n.ID, "old", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := store.MarkFailed(ctx, n.ID, "old", "unavailable"); err != nil {
		t.Fatal(err)
	}
	s := &sender{}
	w := newGuardedWorker(t, s, store, nil, &publisher{}, obs.NewMetrics())

	if err := w.Handle(ctx, record(t, n)); err != nil {
		t.Fatal(err)
	}
	if s.calls != 0 {
		t.Fatal("a failed key was sent without a replay")
	}
	replay := func() *queue.Message {
		m := record(t, n)
		m.Headers = append(m.Headers, queue.Header{Key: dlq.HeaderReplay, Value: []byte("2026-11-23T07:00:00Z")})
		return m
	}
	for range 2 {
		if err := w.Handle(ctx, replay()); err != nil {
			t.Fatal(err)
		}
	}
	if s.calls != 1 {
		t.Errorf("replaying twice sent %d times, want 1", s.calls)
	}
	if c, _ := store.Get(ctx, n.ID); c.State != dedupe.StateSent {
		t.Errorf("after replay: %+v", c)
	}
}

// An address the suppression list cannot hold (blank once normalised, as a
// hand-made record could carry) reaches an outcome: it is not treated as a
// list outage retried for ever, on the lookup or when a permanent failure
// would feed the list.
func TestBlankAddressReachesAnOutcome(t *testing.T) {
	ctx := context.Background()
	s := &sender{script: []error{failure.Perm(failure.ReasonInvalidAddress, errors.New("twilio error 21211"))}}
	p := &publisher{}
	w := newGuardedWorker(t, s, dedupe.NewMemory(dedupe.Options{}), suppress.NewMemory(nil), p, obs.NewMetrics())
	n := note(0)
	n.To = "   "
	n.ID = notification.NewID(n.EventID, n.Template, n.Channel, n.RecipientID, n.To)
	done := make(chan error, 1)
	go func() { done <- w.Handle(ctx, record(t, n)) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Handle = %v, want an outcome", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Handle still retrying after 10s")
	}
	if len(p.on(topics.DLQ)) != 1 {
		t.Errorf("DLQ records = %d, want the provider's permanent failure", len(p.on(topics.DLQ)))
	}
}
