package worker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/protect"
	"github.com/gymhq/herald/worker"
)

// always503 fails every send retryably, as a provider that rejects one payload with 5xx.
type always503 struct{ calls int }

func (s *always503) Send(ctx context.Context, m *channels.Message) (channels.Receipt, error) {
	s.calls++
	return channels.Receipt{}, failure.Retry(failure.ReasonUnavailable, errors.New("503 for this payload"))
}
func (s *always503) Close() error { return nil }

// A record whose own sends always fail retryably, alone on the channel:
// once the breaker is open, each Handle call is the half-open probe, which
// fails and re-opens the breaker, and its next quick attempt is refused.
// That refusal must not be reported as a pause (no outcome, held by the
// runtime for ever): the probe did reach the provider, so the record climbs
// the retry ladder like any retryable failure (and so, in time, reaches
// its attempt and age limits).
func TestFailingProbeClimbsTheLadder(t *testing.T) {
	ctx := context.Background()
	b, err := protect.NewBreaker(protect.BreakerConfig{Name: "sms", Failures: 3, OpenFor: 700 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	inner := &always503{}
	p := &publisher{}
	w, err := worker.New(worker.Config{Channel: notification.SMS, Sender: &protect.Sender{Next: inner, Breaker: b}, Renderer: renderer{},
		Store: dedupe.NewMemory(dedupe.Options{}), Publisher: p, Owner: "w1", Lease: 2 * time.Second, SendTimeout: time.Second,
		MaxAttempts: 3, MaxAge: time.Millisecond, Metrics: obs.NewMetrics()})
	if err != nil {
		t.Fatal(err)
	}
	// Earlier records (or earlier ladder steps of this one) tripped it.
	for i := 0; i < 3; i++ {
		_, _ = b.Do(func() (channels.Receipt, error) {
			return channels.Receipt{}, failure.Retry(failure.ReasonUnavailable, errors.New("503"))
		})
	}
	n := note(0)
	paused := 0
	for i := 0; i < 5; i++ {
		if err := b.Wait(ctx); err != nil { // the consumer's gate
			t.Fatal(err)
		}
		err := w.Handle(ctx, record(t, n))
		if err == nil {
			break
		}
		if !failure.IsPaused(err) {
			t.Fatalf("unexpected %v", err)
		}
		paused++
	}
	if paused != 0 || inner.calls != 1 {
		t.Errorf("%d provider calls, %d Handle calls paused; want the one probe, and an outcome at once", inner.calls, paused)
	}
	if len(p.msgs) != 1 || p.msgs[0].Topic != "herald.sms.retry.v1" {
		t.Fatalf("published %d records; want one on the retry topic", len(p.msgs))
	}
}
