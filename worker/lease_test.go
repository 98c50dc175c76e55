package worker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/worker"
)

// hookSender runs during inside each send.
type hookSender struct {
	during func()
	calls  int
}

func (s *hookSender) Send(ctx context.Context, m *channels.Message) (channels.Receipt, error) {
	s.calls++
	s.during()
	return channels.Receipt{ProviderMessageID: "p1"}, nil
}
func (s *hookSender) Close() error { return nil }

// The lease must cover every provider call, however the time since the
// claim was spent: with a 20s lease and an 18s send timeout (valid), a 4.9s
// rate wait and a 17s send must not let another worker take the claim
// while the call is in flight.
func TestLeaseCoversTheCallAfterARateWait(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	adv := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	store := dedupe.NewMemory(dedupe.Options{Clock: now})
	n := note(0)
	l := &scriptedLimiter{waited: 4900 * time.Millisecond, during: func() { adv(4900 * time.Millisecond) }}
	stolen := false
	s := &hookSender{during: func() {
		adv(17 * time.Second) // provider slow but within SendTimeout
		c, err := store.Claim(ctx, n.ID, "other#1", 20*time.Second)
		if err == nil && c.Acquired {
			stolen = true
		}
	}}
	w, err := worker.New(worker.Config{Channel: notification.SMS, Sender: s, Renderer: renderer{}, Store: store, Publisher: &publisher{},
		Limiter: l, Owner: "w1", Now: now, Lease: 20 * time.Second, SendTimeout: 18 * time.Second, MaxAttempts: 3, Metrics: obs.NewMetrics()})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Handle(ctx, record(t, n)); err != nil {
		t.Fatal(err)
	}
	if stolen {
		t.Errorf("another worker acquired the claim while the provider call was in flight")
	}
}
