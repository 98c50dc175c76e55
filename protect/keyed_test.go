package protect_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/protect"
)

// endpoints answers per address: down ones fail retryably.
type endpoints struct {
	mu    sync.Mutex
	down  map[string]bool
	calls map[string]int
}

func (e *endpoints) Send(_ context.Context, m *channels.Message) (channels.Receipt, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls[m.To]++
	if e.down[m.To] {
		return channels.Receipt{}, failure.Retry(failure.ReasonNetwork, errors.New("connection refused"))
	}
	return channels.Receipt{ProviderMessageID: "ok"}, nil
}
func (e *endpoints) Close() error { return nil }

// One endpoint down does not stop the others: its breaker opens and its
// sends fail at once, retryably but not as a pause, while the channel
// keeps passing; only when every endpoint is open does the channel pause.
// Before, one breaker for the whole webhook channel paused every partner
// behind one dead one (an outside tester's find).
func TestKeyedBreakerIsolatesEndpoints(t *testing.T) {
	e := &endpoints{down: map[string]bool{"dead": true}, calls: map[string]int{}}
	var mu sync.Mutex
	var opened []string
	k, err := protect.NewKeyed(e, protect.BreakerConfig{Name: "webhook", Failures: 3, OpenFor: time.Hour},
		func(key string, _, to protect.State) {
			mu.Lock()
			defer mu.Unlock()
			if to == protect.Open {
				opened = append(opened, key)
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	send := func(to string) error {
		_, err := k.Send(ctx, &channels.Message{To: to})
		return err
	}
	if err := send("crm"); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		_ = send("dead")
	}
	if e.calls["dead"] != 3 {
		t.Fatalf("%d calls to the dead endpoint, want 3 (then its breaker is open)", e.calls["dead"])
	}
	err = send("dead")
	if err == nil || failure.IsPaused(err) || !failure.IsUnsent(err) || failure.ClassOf(err) != failure.Retryable {
		t.Fatalf("a send to the open endpoint: %v; want retryable and unsent, not a pause", err)
	}
	if err := send("crm"); err != nil {
		t.Fatalf("the live endpoint: %v", err)
	}
	if !k.Passing() {
		t.Fatal("the channel paused for one endpoint")
	}
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := k.Wait(wctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	mu.Lock()
	if len(opened) != 1 || opened[0] != "dead" {
		t.Fatalf("opened %q, want the dead endpoint named", opened)
	}
	mu.Unlock()

	// The live one goes down too: every endpoint open, the channel pauses.
	e.mu.Lock()
	e.down["crm"] = true
	e.mu.Unlock()
	for range 3 {
		_ = send("crm")
	}
	if err := send("crm"); !failure.IsPaused(err) {
		t.Fatalf("every endpoint open: %v, want a pause", err)
	}
	if k.Passing() {
		t.Fatal("every endpoint open, and the channel still passing")
	}
	short, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel2()
	if err := k.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with every endpoint open: %v, want it to hold until the context ends", err)
	}
}

// With one endpoint, its breaker's probe window is a pause, not a refusal
// that spends an attempt: while the probe is out, no endpoint admits a
// call (a review's find: Passing took a half-open breaker for passing
// with its probe in flight, and the backlog went down the retry ladder).
func TestKeyedSingleEndpointProbeIsAPause(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	e := &slowProbe{release: release, started: started}
	k, err := protect.NewKeyed(e, protect.BreakerConfig{Name: "webhook", Failures: 1, OpenFor: 20 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := k.Send(ctx, &channels.Message{To: "crm"}); err == nil {
		t.Fatal("the first call should fail")
	}
	time.Sleep(30 * time.Millisecond) // half-open
	done := make(chan struct{})
	go func() { defer close(done); _, _ = k.Send(ctx, &channels.Message{To: "crm"}) }() // the probe
	<-started
	if k.Passing() {
		t.Error("passing while the only endpoint's probe is out")
	}
	_, err = k.Send(ctx, &channels.Message{To: "crm"})
	if !failure.IsPaused(err) || failure.IsUnsent(err) {
		t.Errorf("a send during the probe: %v; want a pause", err)
	}
	close(release)
	<-done
}

// slowProbe fails its first call and holds the ones after it until
// release.
type slowProbe struct {
	mu      sync.Mutex
	calls   int
	release chan struct{}
	started chan struct{}
}

func (s *slowProbe) Send(ctx context.Context, m *channels.Message) (channels.Receipt, error) {
	s.mu.Lock()
	s.calls++
	n := s.calls
	s.mu.Unlock()
	if n == 1 {
		return channels.Receipt{}, failure.Retry(failure.ReasonNetwork, errors.New("refused"))
	}
	s.started <- struct{}{}
	<-s.release
	return channels.Receipt{}, nil
}
func (s *slowProbe) Close() error { return nil }

// subs is a fixed set of endpoints.
type subs map[string]bool

func (s subs) Len() int            { return len(s) }
func (s subs) Has(key string) bool { return s[key] }

// With the serving endpoints known, an endpoint nothing has been sent to
// yet admits calls: a restarted worker whose first sends were a dead
// endpoint's retries paused the channel for the live one, which got
// nothing for 87 s (an outside tester's find). A removed endpoint's
// breaker stops counting, either way.
func TestKeyedCountsEndpointsNotYetSentTo(t *testing.T) {
	e := &endpoints{down: map[string]bool{"dead": true}, calls: map[string]int{}}
	k, err := protect.NewKeyed(e, protect.BreakerConfig{Name: "webhook", Failures: 3, OpenFor: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	k.Endpoints = subs{"live": true, "dead": true}
	ctx := context.Background()
	for range 3 {
		_, _ = k.Send(ctx, &channels.Message{To: "dead"})
	}
	if !k.Passing() {
		t.Fatal("paused with live never sent to")
	}
	if _, err := k.Send(ctx, &channels.Message{To: "dead"}); !failure.IsUnsent(err) {
		t.Fatalf("the dead endpoint's next send: %v, want unsent (the ladder), not a pause", err)
	}
	k.Endpoints = subs{"dead": true} // live removed from webhooks.yaml
	if k.Passing() {
		t.Fatal("passing with the only endpoint open")
	}
	k.Endpoints = subs{"dead": true, "new": true} // one added
	if !k.Passing() {
		t.Fatal("paused with a new endpoint never sent to")
	}
}
