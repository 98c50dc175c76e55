package worker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/worker"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// scriptedLimiter reports a wait without sleeping, and can run a hook
// during the "wait" (another worker acting meanwhile).
type scriptedLimiter struct {
	waited time.Duration
	err    error
	during func()
	calls  int
}

func (l *scriptedLimiter) Wait(context.Context) (time.Duration, error) {
	l.calls++
	if l.during != nil {
		l.during()
	}
	return l.waited, l.err
}

func rateWorker(t *testing.T, s *sender, store dedupe.Store, l worker.Limiter, m *obs.Metrics) *worker.Worker {
	t.Helper()
	w, err := worker.New(worker.Config{Channel: notification.SMS, Sender: s, Renderer: renderer{}, Store: store, Publisher: &publisher{},
		Limiter: l, Owner: "w1", Lease: 2 * time.Second, SendTimeout: time.Second, MaxAttempts: 3, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestRateWaitBeforeEachCall(t *testing.T) {
	ctx := context.Background()
	m := obs.NewMetrics()
	l := &scriptedLimiter{waited: 50 * time.Millisecond}
	s := &sender{script: []error{failure.Retry(failure.ReasonUnavailable, errors.New("503"))}}
	w := rateWorker(t, s, dedupe.NewMemory(dedupe.Options{}), l, m)
	if err := w.Handle(ctx, record(t, note(0))); err != nil {
		t.Fatal(err)
	}
	if l.calls != 2 || s.calls != 2 {
		t.Errorf("limiter waited %d times for %d provider calls; want one wait per call", l.calls, s.calls)
	}
	if got := testutil.ToFloat64(m.Protect.RateLimitWaits.WithLabelValues("sms")); got != 2 {
		t.Errorf("rate waits metric = %v", got)
	}
}

// TestLongRateWaitRenewsClaim: after a wait long enough for the lease to
// have lapsed and another worker to have taken the notification, the call is
// not made: that worker owns it.
func TestLongRateWaitRenewsClaim(t *testing.T) {
	ctx := context.Background()
	clock := time.Now()
	store := dedupe.NewMemory(dedupe.Options{Clock: func() time.Time { return clock }})
	n := note(0)
	l := &scriptedLimiter{waited: 3 * time.Second, during: func() {
		clock = clock.Add(3 * time.Second) // our 2s lease runs out
		if c, err := store.Claim(ctx, n.ID, "other", time.Minute); err != nil || !c.Acquired {
			t.Errorf("other worker could not claim: %+v %v", c, err)
		}
	}}
	s := &sender{}
	w := rateWorker(t, s, store, l, obs.NewMetrics())
	if err := w.Handle(ctx, record(t, n)); err != nil {
		t.Fatal(err)
	}
	if s.calls != 0 {
		t.Error("sent after losing the claim during a rate wait")
	}
}

// TestRateLimiterDownIsAPause: a limiter that cannot be consulted holds the
// record (no call, no retry spent, claim released).
func TestRateLimiterDownIsAPause(t *testing.T) {
	ctx := context.Background()
	store := dedupe.NewMemory(dedupe.Options{})
	l := &scriptedLimiter{err: failure.Paused(failure.ReasonNetwork, errors.New("redis down"))}
	s := &sender{}
	w := rateWorker(t, s, store, l, obs.NewMetrics())
	n := note(0)
	if err := w.Handle(ctx, record(t, n)); !failure.IsPaused(err) {
		t.Fatalf("Handle = %v, want a pause", err)
	}
	if s.calls != 0 {
		t.Error("provider called without the rate limiter")
	}
	if c, _ := store.Get(ctx, n.ID); c.State != dedupe.StateNone {
		t.Errorf("claim kept: %+v", c)
	}
}
