package failover_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gymhq/herald/channels"
	_ "github.com/gymhq/herald/channels/all"
	"github.com/gymhq/herald/channels/email"
	"github.com/gymhq/herald/channels/failover"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/protect"
	"github.com/gymhq/herald/sinks"
	"github.com/gymhq/herald/sinks/smtpsink"
)

// fake is a provider that is up or down (503, retryable) and counts calls.
type fake struct {
	mu        sync.Mutex
	down      bool
	permanent bool
	slow      bool // the call times out: whether it went out is unknown
	calls     int
	got       []*channels.Message
}

func (f *fake) Send(_ context.Context, m *channels.Message) (channels.Receipt, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	switch {
	case f.permanent:
		return channels.Receipt{}, failure.Perm(failure.ReasonInvalidAddress, errors.New("no such mailbox"))
	case f.down:
		return channels.Receipt{}, failure.Retry(failure.ReasonUnavailable, errors.New("503"))
	case f.slow:
		return channels.Receipt{}, failure.Retry(failure.ReasonTimeout, context.DeadlineExceeded)
	}
	f.got = append(f.got, m)
	return channels.Receipt{ProviderMessageID: fmt.Sprintf("id-%d", f.calls)}, nil
}

func (f *fake) Close() error { return nil }

func (f *fake) set(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

func (f *fake) n() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func msg(i int) *channels.Message {
	return &channels.Message{NotificationID: fmt.Sprintf("ntf_%d", i), Channel: notification.Email, To: "a@example.com"}
}

func newSender(t *testing.T, o failover.Options, ps ...failover.Provider) *failover.Sender {
	t.Helper()
	s, err := failover.New(ps, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestWeightedShares(t *testing.T) {
	a, b := &fake{}, &fake{}
	s := newSender(t, failover.Options{Channel: notification.Email}, failover.Provider{Name: "a", Weight: 3, Sender: a}, failover.Provider{Name: "b", Weight: 1, Sender: b})
	for i := range 400 {
		r, err := s.Send(context.Background(), msg(i))
		if err != nil || r.Provider == "" {
			t.Fatalf("send %d: %+v %v", i, r, err)
		}
	}
	if a.n() != 300 || b.n() != 100 {
		t.Errorf("shares a %d, b %d; want 300, 100", a.n(), b.n())
	}
}

// One provider fails: within Failures tries it leaves the rotation, no
// message is lost, and after OpenFor its probe brings it back.
func TestFailoverAndRecovery(t *testing.T) {
	a, b := &fake{}, &fake{}
	var mu sync.Mutex
	var states []string
	s := newSender(t, failover.Options{Channel: notification.Email, Failures: 3, OpenFor: 200 * time.Millisecond},
		failover.Provider{Name: "a", Weight: 1, Sender: a}, failover.Provider{Name: "b", Weight: 1, Sender: b})
	s.Observe(failover.Observer{State: func(p string, from, to protect.State) {
		mu.Lock()
		states = append(states, p+":"+to.String())
		mu.Unlock()
	}})
	a.set(true)
	for i := range 100 {
		m := msg(i)
		r, err := s.Send(context.Background(), m)
		if err != nil || r.Provider != "b" {
			t.Fatalf("send %d while a is down: %+v %v", i, r, err)
		}
	}
	if a.n() != 3 {
		t.Errorf("a was called %d times while down, want 3 (Failures)", a.n())
	}
	if len(b.got) != 100 {
		t.Errorf("b delivered %d of 100", len(b.got))
	}
	a.set(false)
	time.Sleep(250 * time.Millisecond)
	before := a.n()
	for i := range 100 {
		if _, err := s.Send(context.Background(), msg(100+i)); err != nil {
			t.Fatal(err)
		}
	}
	if got := a.n() - before; got < 45 || got > 55 {
		t.Errorf("after recovery a took %d of 100, want about half", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(states) != "[a:open a:half-open a:closed]" {
		t.Errorf("states %v", states)
	}
}

func TestPermanentIsNotFailedOver(t *testing.T) {
	a, b := &fake{permanent: true}, &fake{permanent: true}
	s := newSender(t, failover.Options{Channel: notification.Email}, failover.Provider{Name: "a", Weight: 1, Sender: a}, failover.Provider{Name: "b", Weight: 1, Sender: b})
	_, err := s.Send(context.Background(), msg(1))
	if failure.ClassOf(err) != failure.Permanent || a.n()+b.n() != 1 {
		t.Errorf("%v after %d calls; want the permanent error after one", err, a.n()+b.n())
	}
}

// TestTimeoutIsNotFailedOver: a provider call that timed out may have been
// accepted, so the message is not handed to the next provider at once (it
// would arrive twice); the timeout goes back to the worker, whose retry
// topic tries it later (docs/contracts.md §3). A refused call (503) is still
// failed over (TestFailoverAndRecovery).
func TestTimeoutIsNotFailedOver(t *testing.T) {
	a, b := &fake{slow: true}, &fake{slow: true}
	s := newSender(t, failover.Options{Channel: notification.Email}, failover.Provider{Name: "a", Weight: 1, Sender: a}, failover.Provider{Name: "b", Weight: 1, Sender: b})
	_, err := s.Send(context.Background(), msg(1))
	if failure.ReasonOf(err) != failure.ReasonTimeout || failure.ClassOf(err) != failure.Retryable || a.n()+b.n() != 1 {
		t.Errorf("%v after %d calls; want the retryable timeout after one", err, a.n()+b.n())
	}
}

func TestAllDownPausesAndGates(t *testing.T) {
	a, b := &fake{down: true}, &fake{down: true}
	s := newSender(t, failover.Options{Channel: notification.SMS, Failures: 1, OpenFor: 300 * time.Millisecond},
		failover.Provider{Name: "a", Weight: 1, Sender: a}, failover.Provider{Name: "b", Weight: 1, Sender: b})
	if _, err := s.Send(context.Background(), msg(1)); !failure.IsRetryable(err) {
		t.Fatalf("both failing: %v, want retryable", err)
	}
	if s.Passing() {
		t.Error("gate passing with every breaker open")
	}
	if _, err := s.Send(context.Background(), msg(2)); !failure.IsPaused(err) || a.n()+b.n() != 2 {
		t.Errorf("both open: %v after %d calls; want a pause and no call", err, a.n()+b.n())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Wait(ctx); err == nil {
		t.Error("Wait returned while every breaker is open")
	}
	start := time.Now()
	if err := s.Wait(context.Background()); err != nil || time.Since(start) > time.Second {
		t.Errorf("Wait: %v after %v", err, time.Since(start))
	}
}

func TestUndeliveredRateLowersShare(t *testing.T) {
	a, b := &fake{}, &fake{}
	s := newSender(t, failover.Options{Channel: notification.SMS}, failover.Provider{Name: "a", Weight: 1, Sender: a}, failover.Provider{Name: "b", Weight: 1, Sender: b})
	s.SetUndeliveredRate("a", 0.8)
	for i := range 600 {
		if _, err := s.Send(context.Background(), msg(i)); err != nil {
			t.Fatal(err)
		}
	}
	if a.n() != 100 || b.n() != 500 {
		t.Errorf("a %d, b %d; want 100, 500 (a's weight 0.2 against 1)", a.n(), b.n())
	}
	if h := s.Health(); h[0].Effective < 0.199 || h[0].Effective > 0.201 || h[0].Sends != 100 {
		t.Errorf("health %+v", h)
	}
}

func TestNewRefuses(t *testing.T) {
	f := &fake{}
	for _, ps := range [][]failover.Provider{
		nil,
		{{Name: "a", Weight: 0, Sender: f}},
		{{Name: "a", Weight: 1, Sender: f}, {Name: "a", Weight: 1, Sender: f}},
		{{Name: "a", Weight: 1}},
	} {
		if _, err := failover.New(ps, failover.Options{}); err == nil {
			t.Errorf("New(%v) accepted", ps)
		}
	}
}

// Two real SMTP relays through the real email sender: one goes down mid
// run and comes back; every message is delivered exactly once, with the
// Message-ID its notification id gives whichever relay sent it.
func TestSMTPRelays(t *testing.T) {
	out := sinks.NewOutbox(0)
	relays := make([]*smtpsink.Sink, 2)
	var ps []failover.Provider
	for i := range relays {
		sink, err := smtpsink.Start(out, smtpsink.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sink.Close() })
		relays[i] = sink
		snd, err := email.New(email.Config{Addr: sink.Addr(), TLS: email.TLSNone, From: "Gym <g@example.com>", PoolSize: 1, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, failover.Provider{Name: sink.Addr(), Weight: 1, Sender: snd})
	}
	s := newSender(t, failover.Options{Channel: notification.Email, Failures: 3, OpenFor: 300 * time.Millisecond}, ps...)
	defer s.Close()
	byRelay := map[string]int{}
	send := func(from, n int) {
		for i := from; i < from+n; i++ {
			m := &channels.Message{NotificationID: fmt.Sprintf("ntf_%03d", i), Channel: notification.Email, To: fmt.Sprintf("m%d@example.com", i),
				Subject: "Booked", Text: "See you there.\n"}
			r, err := s.Send(context.Background(), m)
			if err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
			byRelay[r.Provider]++
		}
	}
	send(0, 60)
	before := fmt.Sprint(byRelay[ps[0].Name], "/", byRelay[ps[1].Name])
	clear(byRelay)
	if err := relays[0].Refuse(true); err != nil {
		t.Fatal(err)
	}
	send(60, 60)
	during := fmt.Sprint(byRelay[ps[0].Name], "/", byRelay[ps[1].Name])
	if byRelay[ps[0].Name] != 0 {
		t.Errorf("the refused relay accepted %d", byRelay[ps[0].Name])
	}
	clear(byRelay)
	if err := relays[0].Refuse(false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(350 * time.Millisecond)
	send(120, 60)
	after := fmt.Sprint(byRelay[ps[0].Name], "/", byRelay[ps[1].Name])
	if byRelay[ps[0].Name] < 20 {
		t.Errorf("after recovery the first relay took %d of 60", byRelay[ps[0].Name])
	}
	t.Logf("relay A/B accepted: before %s, A refusing %s, A back %s", before, during, after)

	seen := map[string]bool{}
	for _, d := range out.All() {
		if seen[d.MessageID] {
			t.Errorf("%s delivered twice", d.MessageID)
		}
		seen[d.MessageID] = true
	}
	if len(seen) != 180 {
		t.Errorf("%d distinct messages delivered, want 180", len(seen))
	}
	for i := range 180 {
		if id := fmt.Sprintf("<ntf_%03d@", i); !hasPrefix(seen, id) {
			t.Errorf("no message with Message-ID %s…", id)
			break
		}
	}
}

func hasPrefix(ids map[string]bool, p string) bool {
	for id := range ids {
		if len(id) >= len(p) && id[:len(p)] == p {
			return true
		}
	}
	return false
}
