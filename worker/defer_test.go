package worker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gymhq/herald/caps"
	"github.com/gymhq/herald/channels/httperr"
	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/internal/logtest"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/schedule"
	"github.com/gymhq/herald/topics"
	"github.com/gymhq/herald/worker"
)

// deferral is one notification a worker handed to the scheduler.
type deferral struct {
	n     notification.Notification
	due   time.Time
	topic string
}

type waitRig struct {
	w        *worker.Worker
	s        *sender
	store    dedupe.Store
	pub      *publisher
	deferred []deferral
	now      time.Time
	logs     *observer.ObservedLogs
}

// kept is a copy of n a test may keep past the hook: n's Data's fields are
// the worker's pooled buffer, refilled by the next record (worker.Config).
func kept(n *notification.Notification) notification.Notification {
	c := *n
	c.Data, c.CancelKeys = n.Data.Clone(), slices.Clone(n.CancelKeys)
	return c
}

func newWaitRig(t *testing.T, policy string, opts ...func(*worker.Config)) *waitRig {
	r := &waitRig{s: &sender{}, store: dedupe.NewMemory(dedupe.Options{}), pub: &publisher{}, now: time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)}
	log, logs := logtest.Observed()
	r.logs = logs
	cfg := worker.Config{Channel: notification.SMS, Sender: r.s, Renderer: renderer{}, Store: r.store, Publisher: r.pub,
		Owner: "w", Lease: 2 * time.Second, SendTimeout: time.Second, MaxAttempts: 5, QuickAttempts: 1,
		Now: func() time.Time { return r.now }, Logger: log,
		Defer: func(_ context.Context, n *notification.Notification, due time.Time, topic string) error {
			r.deferred = append(r.deferred, deferral{kept(n), due, topic})
			return nil
		},
		Caps: caps.NewMemory(),
		CapOf: func(n *notification.Notification) (caps.Limit, string, bool) {
			return caps.Limit{Max: 2, Per: time.Hour}, policy, n.Category == "reminders"
		},
	}
	for _, o := range opts {
		o(&cfg)
	}
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.w = w
	return r
}

func reminderNote(i int) *notification.Notification {
	n := note(0)
	n.EventID = fmt.Sprint("evt_", i)
	n.Category = "reminders"
	n.ID = notification.NewID(n.EventID, n.Template, n.Channel, n.RecipientID, n.To)
	return n
}

// Two reminders an hour: the third waits in the scheduler until the
// first leaves the window, without a send, and a repeat of a counted one
// is not counted again.
func TestCapDefers(t *testing.T) {
	r := newWaitRig(t, "defer")
	ctx := context.Background()
	for i := range 3 {
		r.now = r.now.Add(time.Minute)
		if err := r.w.Handle(ctx, record(t, reminderNote(i))); err != nil {
			t.Fatal(err)
		}
	}
	if r.s.calls != 2 || len(r.deferred) != 1 {
		t.Fatalf("%d sends, %d deferred; want 2 and 1", r.s.calls, len(r.deferred))
	}
	d := r.deferred[0]
	if want := time.Date(2026, 12, 4, 10, 1, 0, 0, time.UTC); !d.due.Equal(want) || d.topic != topics.Channel(notification.SMS) || d.n.Deferred != notification.DeferCap {
		t.Fatalf("deferred to %v on %s (%s), want %v on the channel topic (cap)", d.due, d.topic, d.n.Deferred, want)
	}
	if n := logtest.Count(logtest.Outcomes(t, r.logs), obs.OutcomeDeferred); n != 1 {
		t.Errorf("%d deferral outcome lines, want 1", n)
	}
	// Its claim was given back: when it comes back due, it is sent.
	r.now = d.due
	if err := r.w.Handle(ctx, record(t, &d.n)); err != nil {
		t.Fatal(err)
	}
	if r.s.calls != 3 {
		t.Fatalf("the deferred reminder was not sent when due (%d sends)", r.s.calls)
	}
	// Transactional messages are not capped.
	for i := range 3 {
		n := note(0)
		n.EventID = fmt.Sprint("evt_tx_", i)
		n.ID = notification.NewID(n.EventID, n.Template, n.Channel, n.RecipientID, n.To)
		if err := r.w.Handle(ctx, record(t, n)); err != nil {
			t.Fatal(err)
		}
	}
	if r.s.calls != 6 {
		t.Fatalf("%d sends, want every transactional one", r.s.calls)
	}
}

// A cap's release that falls inside the person's quiet hours waits for
// their end: an outside tester's third reminder of an hour, held by the
// cap, went out inside quiet hours that began after it was planned. One
// whose class starts before they end is capped; a lookup that fails is
// retried, with nothing held.
func TestCapReleaseWaitsOutQuietHours(t *testing.T) {
	quietFrom, quietTo := time.Date(2026, 12, 4, 9, 30, 0, 0, time.UTC), time.Date(2026, 12, 4, 10, 30, 0, 0, time.UTC)
	var lookupErr error
	var asked []time.Time
	quietEnd := func(c *worker.Config) {
		c.QuietEnd = func(_ context.Context, n *notification.Notification, at time.Time) (time.Time, error) {
			asked = append(asked, at)
			if lookupErr != nil {
				return time.Time{}, lookupErr
			}
			if !at.Before(quietFrom) && at.Before(quietTo) {
				return quietTo, nil
			}
			return time.Time{}, nil
		}
	}
	r := newWaitRig(t, "defer", quietEnd)
	ctx := context.Background()
	for i := range 3 { // 09:01, 09:02, 09:03: room again at 10:01, inside 09:30-10:30
		r.now = r.now.Add(time.Minute)
		if err := r.w.Handle(ctx, record(t, reminderNote(i))); err != nil {
			t.Fatal(err)
		}
	}
	if r.s.calls != 2 || len(r.deferred) != 1 {
		t.Fatalf("%d sends, %d deferred; want 2 and 1", r.s.calls, len(r.deferred))
	}
	if d := r.deferred[0]; !d.due.Equal(quietTo) || d.n.Deferred != notification.DeferCap {
		t.Fatalf("held until %v (%s), want the end of quiet hours %v (cap)", d.due, d.n.Deferred, quietTo)
	}
	if want := time.Date(2026, 12, 4, 10, 1, 0, 0, time.UTC); len(asked) != 1 || !asked[0].Equal(want) {
		t.Fatalf("quiet hours asked about %v, want the cap's release %v", asked, want)
	}

	// A class at 10:15: waiting out quiet hours passes it, so it is capped.
	thirdCapped(t, newWaitRig(t, "defer", quietEnd), time.Date(2026, 12, 4, 10, 15, 0, 0, time.UTC))

	// The preferences cannot be read: retried, nothing held, claim given back.
	r = newWaitRig(t, "defer", quietEnd)
	lookupErr = errors.New("redis down")
	var err error
	for i := range 3 {
		err = r.w.Handle(ctx, record(t, reminderNote(i)))
	}
	if err == nil || len(r.deferred) != 0 {
		t.Fatalf("lookup failure: err %v, %d deferred; want a retry and none", err, len(r.deferred))
	}
	if c, _ := r.store.Get(ctx, reminderNote(2).ID); c.State == dedupe.StateInFlight || c.State == dedupe.StateSent {
		t.Fatalf("third's key %+v after the failed lookup, want it given back", c)
	}
}

// Policy drop: the third is never sent, its key says so, and a
// redelivery of it is a duplicate.
func TestCapDrops(t *testing.T) {
	r := newWaitRig(t, "drop")
	ctx := context.Background()
	for i := range 3 {
		if err := r.w.Handle(ctx, record(t, reminderNote(i))); err != nil {
			t.Fatal(err)
		}
	}
	third := reminderNote(2)
	c, err := r.store.Get(ctx, third.ID)
	if err != nil || c.State != dedupe.StateFailed || c.Reason != obs.OutcomeCapped {
		t.Fatalf("third's key: %+v %v, want failed/capped", c, err)
	}
	if err := r.w.Handle(ctx, record(t, third)); err != nil {
		t.Fatal(err)
	}
	if r.s.calls != 2 || len(r.deferred) != 0 {
		t.Fatalf("%d sends, %d deferred; want 2 and none", r.s.calls, len(r.deferred))
	}
}

// A retry no longer waits on its topic holding an in-flight slot: the
// worker hands it to the scheduler, due at its not_before, for the retry
// topic; and a retry record that arrives well before its time (an older
// version wrote it) is handed back the same way.
func TestRetryWaitsInTheScheduler(t *testing.T) {
	r := newWaitRig(t, "defer")
	r.s.script = []error{failure.Retry(failure.ReasonUnavailable, fmt.Errorf("503"))}
	ctx := context.Background()
	n := note(0)
	if err := r.w.Handle(ctx, record(t, n)); err != nil {
		t.Fatal(err)
	}
	if len(r.deferred) != 1 || r.deferred[0].topic != topics.Retry(notification.SMS) || r.deferred[0].n.Attempt != 1 || r.deferred[0].n.Deferred != notification.DeferRetry {
		t.Fatalf("deferred %+v", r.deferred)
	}
	if got := r.pub.on(topics.Retry(notification.SMS)); len(got) != 0 {
		t.Fatalf("%d records written to the retry topic directly", len(got))
	}
	early := r.deferred[0].n
	start := time.Now()
	if err := r.w.Handle(ctx, record(t, &early)); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 5*time.Second || len(r.deferred) != 2 {
		t.Fatalf("an early retry record was slept on (%v) or not handed back (%d)", time.Since(start), len(r.deferred))
	}
	r.now = early.NotBefore
	if err := r.w.Handle(ctx, record(t, &early)); err != nil {
		t.Fatal(err)
	}
	if r.s.calls != 2 {
		t.Fatalf("%d sends, want the retry sent when due", r.s.calls)
	}
}

// A notification the scheduler fired is due even when this worker's clock
// says it is a few seconds early: handing it back would make a wait the
// scheduler has marked done, and it would be lost.
func TestFiredIsNotHandedBack(t *testing.T) {
	r := newWaitRig(t, "defer")
	n := note(0)
	n.DueAt = r.now.Add(4 * time.Second) // the scheduler's clock is ahead
	m := record(t, n)
	m.Headers = append(m.Headers, queue.Header{Key: schedule.HeaderFired, Value: []byte(schedule.EntryID(n.ID, n.DueAt, 0))})
	if err := r.w.Handle(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if len(r.deferred) != 0 || r.s.calls != 1 {
		t.Fatalf("%d deferred, %d sends; want it sent", len(r.deferred), r.s.calls)
	}
}

// A cap never defers a reminder past the class it reminds of: over the
// cap with room only after the class starts, it is capped.
func TestCapNeverDefersPastExpiry(t *testing.T) {
	r := newWaitRig(t, "defer")
	thirdCapped(t, r, r.now.Add(30*time.Minute)) // the window has room again only in an hour
}

// thirdCapped hands r three reminders that expire at expires, over a cap
// of two, and requires the third capped: not held, not sent, its key
// failed with reason capped.
func thirdCapped(t *testing.T, r *waitRig, expires time.Time) {
	t.Helper()
	ctx := context.Background()
	for i := range 3 {
		n := reminderNote(i)
		n.ExpiresAt = expires
		if err := r.w.Handle(ctx, record(t, n)); err != nil {
			t.Fatal(err)
		}
	}
	if len(r.deferred) != 0 || r.s.calls != 2 {
		t.Fatalf("%d deferred, %d sent; want the third capped", len(r.deferred), r.s.calls)
	}
	if c, _ := r.store.Get(ctx, reminderNote(2).ID); c.Reason != obs.OutcomeCapped {
		t.Fatalf("third's key %+v, want capped", c)
	}
}

// A reminder whose class has started when a worker takes it (held past it
// by the scheduler, a provider that was down, a backlog) is not sent: its
// key is marked failed with reason expired, so a redelivery is a
// duplicate, and the warning names it. One still ahead of its class goes.
func TestExpiredIsNotSent(t *testing.T) {
	r := newWaitRig(t, "drop")
	ctx := context.Background()
	late := reminderNote(0)
	late.ExpiresAt = r.now.Add(-time.Minute)
	for range 2 {
		if err := r.w.Handle(ctx, record(t, late)); err != nil {
			t.Fatal(err)
		}
	}
	if r.s.calls != 0 {
		t.Fatalf("%d sends of a reminder whose class had started", r.s.calls)
	}
	if c, err := r.store.Get(ctx, late.ID); err != nil || c.State != dedupe.StateFailed || c.Reason != obs.OutcomeExpired {
		t.Fatalf("its key: %+v %v, want failed/expired", c, err)
	}
	lines := r.logs.FilterMessage("notification expired").All()
	if len(lines) != 1 || lines[0].Level != zap.WarnLevel || lines[0].ContextMap()["notification_id"] != late.ID {
		t.Fatalf("expired lines %+v, want one warning naming the notification", lines)
	}
	if n := len(r.logs.FilterMessage("notification duplicate").All()); n != 1 {
		t.Fatalf("%d duplicate lines for the redelivery, want 1", n)
	}
	ahead := reminderNote(1)
	ahead.ExpiresAt = r.now.Add(time.Minute)
	if err := r.w.Handle(ctx, record(t, ahead)); err != nil {
		t.Fatal(err)
	}
	if r.s.calls != 1 {
		t.Fatalf("%d sends of a reminder before its class, want 1", r.s.calls)
	}
}

// A provider's Retry-After is honoured: no quick retry in process (the
// receiver got three POSTs within 300 ms of a 429 with Retry-After: 25),
// and the retry waits for it when it is longer than the ladder's step
// (it came after 10 s). An outside tester's find; webhooks.md promised it.
func TestRetryAfterIsHonoured(t *testing.T) {
	now := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	s := &sender{script: []error{httperr.New(failure.Retryable, failure.ReasonRateLimited, 429, "25", errors.New("HTTP 429"))}}
	deferred := handleWithQuickTries(t, now, s)
	if s.calls != 1 {
		t.Fatalf("%d provider calls, want 1: the provider said to wait 25s", s.calls)
	}
	if len(deferred) != 1 || deferred[0].due.Sub(now) < 25*time.Second {
		t.Fatalf("deferred %+v, want the retry due 25s or more after %v", deferred, now)
	}
}

// A notification the scheduler fires is checked against its person's
// stored preferences as they are now: a reminder booked weeks ahead whose
// person has since turned reminders off is cancelled, not sent (an outside
// tester's find: the push went out three minutes after the opt-out). One
// read from its channel topic was planned with current preferences and is
// not asked again; a lookup that fails sends nothing.
func TestOptOutAfterPlanningCancelsAtFiring(t *testing.T) {
	r := newWaitRig(t, "drop")
	optedOut, lookups := true, 0
	var lookupErr error
	log, logs := logtest.Observed()
	w, err := worker.New(worker.Config{Channel: notification.SMS, Sender: r.s, Renderer: renderer{}, Store: r.store, Publisher: r.pub,
		Owner: "w", Lease: 2 * time.Second, SendTimeout: time.Second, MaxAttempts: 5, QuickAttempts: 1,
		Now: func() time.Time { return r.now }, Logger: log,
		OptedOut: func(context.Context, *notification.Notification) (bool, error) { lookups++; return optedOut, lookupErr },
	})
	if err != nil {
		t.Fatal(err)
	}
	fired := func(n *notification.Notification) *queue.Message {
		m := record(t, n)
		m.Headers = append(m.Headers, queue.Header{Key: schedule.HeaderFired, Value: []byte(n.ID + "@1.0")})
		return m
	}
	ctx := context.Background()

	n := reminderNote(0)
	if err := w.Handle(ctx, fired(n)); err != nil {
		t.Fatal(err)
	}
	if r.s.calls != 0 {
		t.Fatalf("%d sends after the opt-out", r.s.calls)
	}
	if c, _ := r.store.Get(ctx, n.ID); c.State != dedupe.StateFailed || c.Reason != obs.ReasonOptedOut {
		t.Fatalf("its key %+v, want failed/opted_out", c)
	}
	lines := logs.FilterMessage("notification cancelled").All()
	if len(lines) != 1 || lines[0].ContextMap()["reason"] != "opted_out" {
		t.Fatalf("cancelled lines %+v", lines)
	}

	lookups = 0
	if err := w.Handle(ctx, record(t, reminderNote(1))); err != nil { // from its channel topic
		t.Fatal(err)
	}
	if lookups != 0 || r.s.calls != 1 {
		t.Fatalf("%d lookups, %d sends for a notification planned with today's preferences; want 0 and 1", lookups, r.s.calls)
	}

	optedOut, lookupErr = false, errors.New("redis: connection refused")
	if err := w.Handle(ctx, fired(reminderNote(2))); err == nil || r.s.calls != 1 {
		t.Fatalf("lookup failed: Handle %v with %d sends; want an error and no send", err, r.s.calls)
	}
	optedOut, lookupErr = false, nil
	if err := w.Handle(ctx, fired(reminderNote(2))); err != nil || r.s.calls != 2 {
		t.Fatalf("still opted in: Handle %v, %d sends; want it sent", err, r.s.calls)
	}
}

// A send its endpoint's open breaker refused without a call (Unsent) goes
// to the retry ladder at once: no quick tries in process, which slept
// about 0.4 s per record holding an in-flight slot while the other
// endpoints waited (a review's find).
func TestUnsentIsNotTriedAgainInProcess(t *testing.T) {
	now := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	s := &sender{script: []error{
		failure.Unsent(failure.ReasonUnavailable, errors.New("webhook dead: circuit breaker open")),
		failure.Unsent(failure.ReasonUnavailable, errors.New("webhook dead: circuit breaker open")),
	}}
	deferred := handleWithQuickTries(t, now, s)
	if s.calls != 1 || len(deferred) != 1 || deferred[0].n.Attempt != 1 {
		t.Fatalf("%d calls, %d deferred; want 1 call and the retry on the ladder", s.calls, len(deferred))
	}
}

// A retry that would come after the notification's expiry is not
// scheduled: the notification ends as expired at once (a review's find:
// it was scheduled, then dead-lettered as exhausted or sent after its
// class).
func TestRetryPastExpiryEndsExpired(t *testing.T) {
	r := newWaitRig(t, "drop")
	r.s.script = []error{failure.Retry(failure.ReasonUnavailable, errors.New("provider down"))}
	n := reminderNote(0)
	n.Category = ""                          // no cap
	n.ExpiresAt = r.now.Add(5 * time.Second) // the ladder's first step is about 10 s
	if err := r.w.Handle(context.Background(), record(t, n)); err != nil {
		t.Fatal(err)
	}
	if len(r.deferred) != 0 {
		t.Fatalf("a retry scheduled past its expiry: %+v", r.deferred)
	}
	if c, _ := r.store.Get(context.Background(), n.ID); c.State != dedupe.StateFailed || c.Reason != obs.OutcomeExpired {
		t.Fatalf("its key %+v, want failed/expired", c)
	}
}

// handleWithQuickTries handles one notification at now on a worker that
// may try a send three times in process, sending through s, and returns
// what it handed the scheduler.
func handleWithQuickTries(t *testing.T, now time.Time, s *sender) []deferral {
	t.Helper()
	var deferred []deferral
	w, err := worker.New(worker.Config{Channel: notification.SMS, Sender: s, Renderer: renderer{}, Store: dedupe.NewMemory(dedupe.Options{}), Publisher: &publisher{},
		Owner: "w", Lease: 2 * time.Second, SendTimeout: time.Second, MaxAttempts: 5, QuickAttempts: 3,
		Now: func() time.Time { return now }, Logger: zap.NewNop(),
		Defer: func(_ context.Context, n *notification.Notification, due time.Time, topic string) error {
			deferred = append(deferred, deferral{kept(n), due, topic})
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Handle(context.Background(), record(t, note(0))); err != nil {
		t.Fatal(err)
	}
	return deferred
}
