// Package failover spreads one channel's sends over several providers —
// SMTP relays, Twilio messaging services — by weight, each behind its own
// circuit breaker, and moves traffic off a failing one within a few
// failures: a retryable failure is retried on the next provider inside the
// same Send (except a timeout, which the provider may have acted on), an open breaker takes its provider out of the rotation, and
// its half-open probe brings it back when it recovers. Delivery receipts
// can lower a provider's share (SetUndeliveredRate), as GOV.UK Notify
// deprioritises a provider whose messages do not arrive.
//
// The message is passed to every provider unchanged: its notification id,
// idempotency key and Message-ID do not depend on who sends it. A
// permanent failure (an invalid address) is about the message, not the
// provider, and is returned at once, never failed over.
package failover

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/protect"
)

// Provider is one way the channel can send, and its share of the traffic.
type Provider struct {
	Name   string
	Weight int
	Sender channels.Sender
}

// Options configure a Sender.
type Options struct {
	Channel notification.Channel
	// Failures and OpenFor configure each provider's breaker
	// (protect.BreakerConfig): consecutive retryable failures that take it
	// out of the rotation, and how long until a probe. Defaults 3 and 30s.
	Failures int
	OpenFor  time.Duration
}

// Observer is told what the Sender does, for metrics and logs. Either
// func may be nil; they must not block.
type Observer struct {
	State func(provider string, from, to protect.State)
	Send  func(provider string, err error)
}

// Sender is a channels.Sender over several providers, and the gate of its
// channel's consumer: closed only while every provider's breaker is open.
type Sender struct {
	opts    Options
	members []*member

	mu       sync.Mutex // the members' round-robin and counters
	observer atomic.Pointer[Observer]
}

type member struct {
	Provider
	breaker *protect.Breaker
	// current is the smooth weighted round-robin's running weight;
	// undelivered the share of its messages receipts said were not
	// delivered. Both under Sender.mu.
	current     float64
	undelivered float64
	sends, errs uint64
}

// New returns a Sender over ps.
func New(ps []Provider, o Options) (*Sender, error) {
	if len(ps) == 0 {
		return nil, errors.New("failover: no providers")
	}
	if o.Failures <= 0 {
		o.Failures = 3
	}
	if o.OpenFor <= 0 {
		o.OpenFor = 30 * time.Second
	}
	s := &Sender{opts: o}
	seen := map[string]bool{}
	for _, p := range ps {
		switch {
		case p.Name == "" || seen[p.Name]:
			return nil, fmt.Errorf("failover: provider name %q is empty or used twice", p.Name)
		case p.Weight < 1:
			return nil, fmt.Errorf("failover: provider %s has weight %d; want 1 or more", p.Name, p.Weight)
		case p.Sender == nil:
			return nil, fmt.Errorf("failover: provider %s has no sender", p.Name)
		}
		seen[p.Name] = true
		m := &member{Provider: p}
		name := p.Name
		b, err := protect.NewBreaker(protect.BreakerConfig{
			Name: string(o.Channel) + " provider " + name, Failures: o.Failures, OpenFor: o.OpenFor,
			OnState: func(from, to protect.State) {
				if f := s.observe().State; f != nil {
					f(name, from, to)
				}
			},
		})
		if err != nil {
			return nil, err
		}
		m.breaker = b
		s.members = append(s.members, m)
	}
	return s, nil
}

// Observe sets what is told of state changes and sends.
func (s *Sender) Observe(o Observer) { s.observer.Store(&o) }

// observe is the observer; it takes no lock, since a breaker reports its
// state changes from inside calls made under s.mu.
func (s *Sender) observe() Observer {
	if o := s.observer.Load(); o != nil {
		return *o
	}
	return Observer{}
}

// Providers names the providers in order.
func (s *Sender) Providers() []string {
	out := make([]string, len(s.members))
	for i, m := range s.members {
		out[i] = m.Name
	}
	return out
}

// Send sends m through the next provider by weight whose breaker lets it,
// and on a retryable failure through the next one, until one accepts, a
// failure is permanent, or every provider was tried or is open.
func (s *Sender) Send(ctx context.Context, m *channels.Message) (channels.Receipt, error) {
	tried := make([]bool, len(s.members))
	var failed []string
	var last error
	for range s.members {
		i := s.pick(tried)
		if i < 0 {
			break
		}
		tried[i] = true
		mb := s.members[i]
		r, err := mb.breaker.Do(func() (channels.Receipt, error) { return mb.Sender.Send(ctx, m) })
		if !failure.IsPaused(err) {
			s.count(mb, err)
			if f := s.observe().Send; f != nil {
				f(mb.Name, err)
			}
		}
		switch {
		case err == nil:
			r.Provider = mb.Name
			return r, nil
		case failure.ReasonOf(err) == failure.ReasonTimeout:
			// The provider may have accepted it: handed to the next one
			// now it could arrive twice. The worker's retry topic tries it
			// later, and this provider's breaker has counted the timeout.
			return r, fmt.Errorf("%s: %s: %w", s.opts.Channel, mb.Name, err)
		case failure.IsPaused(err), failure.IsRetryable(err):
			last = err
			failed = append(failed, mb.Name)
			if ctx.Err() != nil {
				return r, err
			}
		default:
			return r, err
		}
	}
	if last == nil || failure.IsPaused(last) && len(failed) == len(s.members) {
		return channels.Receipt{}, failure.Paused(failure.ReasonUnavailable,
			fmt.Errorf("%s: every provider's circuit breaker is open (%s)", s.opts.Channel, strings.Join(s.Providers(), ", ")))
	}
	return channels.Receipt{}, fmt.Errorf("%s: tried %s: %w", s.opts.Channel, strings.Join(failed, ", "), last)
}

// pick is smooth weighted round-robin (nginx's) over the providers not yet
// tried whose breaker is not open; -1 when none is left.
func (s *Sender) pick(tried []bool) int {
	open := make([]bool, len(s.members))
	for i, m := range s.members {
		open[i] = m.breaker.State() == protect.Open // may change state and call the observer: outside s.mu
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	best, total := -1, 0.0
	for i, m := range s.members {
		if tried[i] || open[i] {
			continue
		}
		w := m.effective()
		m.current += w
		total += w
		if best < 0 || m.current > s.members[best].current {
			best = i
		}
	}
	if best >= 0 {
		s.members[best].current -= total
	}
	return best
}

// effective is the weight receipts leave a provider: weight × (1 −
// undelivered rate), never below a tenth of its weight, so a provider
// whose messages do not arrive loses most of its share but is still
// measured.
func (m *member) effective() float64 {
	return math.Max(float64(m.Weight)*(1-m.undelivered), float64(m.Weight)/10)
}

func (s *Sender) count(m *member, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m.sends++
	if err != nil {
		m.errs++
	}
}

// SetUndeliveredRate records the share (0..1) of a provider's recent
// messages its delivery receipts said were not delivered.
func (s *Sender) SetUndeliveredRate(provider string, rate float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.members {
		if m.Name == provider {
			m.undelivered = math.Min(math.Max(rate, 0), 1)
		}
	}
}

// Health is one provider's state.
type Health struct {
	Name          string
	Weight        int
	Effective     float64
	State         protect.State
	Sends, Errors uint64
}

// Health reports every provider.
func (s *Sender) Health() []Health {
	states := make([]protect.State, len(s.members))
	for i, m := range s.members {
		states[i] = m.breaker.State()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Health, len(s.members))
	for i, m := range s.members {
		out[i] = Health{Name: m.Name, Weight: m.Weight, Effective: m.effective(), State: states[i], Sends: m.sends, Errors: m.errs}
	}
	return out
}

// Passing reports whether some provider's breaker is closed.
func (s *Sender) Passing() bool {
	for _, m := range s.members {
		if m.breaker.Passing() {
			return true
		}
	}
	return false
}

// Wait blocks while no provider can take a message: every breaker open,
// or half-open with its probe in flight (kafkarun.Gate).
func (s *Sender) Wait(ctx context.Context) error {
	if s.Passing() {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, len(s.members))
	for _, m := range s.members {
		go func() { done <- m.breaker.Wait(ctx) }()
	}
	var err error
	for range s.members {
		if err = <-done; err == nil {
			return nil
		}
	}
	return err
}

// Close closes every provider.
func (s *Sender) Close() error {
	var errs []error
	for _, m := range s.members {
		errs = append(errs, m.Sender.Close())
	}
	return errors.Join(errs...)
}

// FromList builds a channel's sender from a provider list variable (a
// comma-separated HERALD_SMTP_ADDR, say): one provider is its bare sender,
// several a Sender over them, named by their values, with the fleet's
// breaker settings.
func FromList(ch notification.Channel, c *config.Config, list string, build func(value string) (channels.Sender, error)) (channels.Sender, error) {
	ws, err := config.ParseWeighted(list)
	if err != nil {
		return nil, err
	}
	var ps []Provider
	closeAll := func() {
		for _, p := range ps {
			p.Sender.Close()
		}
	}
	for _, w := range ws {
		s, err := build(w.Value)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("%s: %w", w.Value, err)
		}
		ps = append(ps, Provider{Name: w.Value, Weight: w.Weight, Sender: s})
	}
	if len(ps) == 1 {
		return ps[0].Sender, nil
	}
	s, err := New(ps, Options{Channel: ch, Failures: c.BreakerFailures, OpenFor: c.BreakerOpenFor})
	if err != nil {
		closeAll()
	}
	return s, err
}
