package protect

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/failure"
)

// State is a breaker's state; its numeric value is the state gauge's value.
type State int

const (
	Closed   State = 0 // sending normally
	HalfOpen State = 1 // one probe is let through to test the provider
	Open     State = 2 // provider considered down; the channel is paused
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case HalfOpen:
		return "half-open"
	}
	return "open"
}

// BreakerConfig configures a Breaker.
type BreakerConfig struct {
	// Name names the provider in errors.
	Name string
	// Failures is how many consecutive retryable provider failures open the
	// breaker. Permanent failures (an invalid number, a gone token) are
	// about one recipient, not the provider, and count as successes.
	Failures int
	// OpenFor is how long the breaker stays open before a probe is let
	// through (half-open). A failed probe opens it again for OpenFor.
	OpenFor time.Duration
	// OnState is told every state change (metrics, logs). Optional; it must
	// not call back into the Breaker.
	OnState func(from, to State)
}

// Breaker is a circuit breaker around one provider (github.com/sony/gobreaker)
// plus a gate: Wait blocks while the breaker is open, or half-open with its
// probe in flight, so the channel's consumer stops starting records instead
// of claiming them only to be refused. Safe for concurrent use.
type Breaker struct {
	cfg BreakerConfig
	cb  *gobreaker.CircuitBreaker[channels.Receipt]

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every state change or probe end
	openedAt time.Time
	probing  int
}

// NewBreaker returns a closed breaker.
func NewBreaker(cfg BreakerConfig) (*Breaker, error) {
	if cfg.Failures < 1 {
		return nil, fmt.Errorf("protect: breaker %s: failures %d must be at least 1", cfg.Name, cfg.Failures)
	}
	if cfg.OpenFor <= 0 {
		return nil, fmt.Errorf("protect: breaker %s: open period %v must be positive", cfg.Name, cfg.OpenFor)
	}
	b := &Breaker{cfg: cfg, changed: make(chan struct{})}
	b.cb = gobreaker.NewCircuitBreaker[channels.Receipt](gobreaker.Settings{
		Name:        cfg.Name,
		MaxRequests: 1,
		Timeout:     cfg.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= uint32(cfg.Failures) },
		IsSuccessful: func(err error) bool {
			return err == nil || failure.ClassOf(err) != failure.Retryable
		},
		// Our own cancellation (shutdown, revoke) says nothing about the
		// provider.
		IsExcluded:    func(err error) bool { return errors.Is(err, context.Canceled) },
		OnStateChange: func(_ string, from, to gobreaker.State) { b.stateChanged(state(from), state(to)) },
	})
	return b, nil
}

func state(s gobreaker.State) State {
	switch s {
	case gobreaker.StateClosed:
		return Closed
	case gobreaker.StateHalfOpen:
		return HalfOpen
	}
	return Open
}

// stateChanged runs under gobreaker's lock: it must not call b.cb.
func (b *Breaker) stateChanged(from, to State) {
	b.mu.Lock()
	if to == Open {
		b.openedAt = time.Now()
	}
	b.broadcastLocked()
	b.mu.Unlock()
	if b.cfg.OnState != nil {
		b.cfg.OnState(from, to)
	}
}

func (b *Breaker) broadcastLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// State returns the current state (moving open to half-open once OpenFor
// has passed).
func (b *Breaker) State() State { return state(b.cb.State()) }

// Passing reports whether Wait would return at once because the breaker is
// closed: the consumer's fast path (kafkarun skips Wait's setup).
func (b *Breaker) Passing() bool { return b.State() == Closed }

// Admits reports whether a call would go through now: the breaker is
// closed, or half-open with no probe in flight (Wait returns at once).
func (b *Breaker) Admits() bool {
	switch b.State() {
	case Closed:
		return true
	case HalfOpen:
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.probing == 0
	}
	return false
}

// Wait blocks while the channel should not start new work: the breaker is
// open, or half-open with its probe in flight. It returns ctx's error if ctx
// ends first. This is the consumer's gate (kafkarun.Gate).
func (b *Breaker) Wait(ctx context.Context) error {
	for {
		b.mu.Lock()
		ch, opened, probing := b.changed, b.openedAt, b.probing
		b.mu.Unlock()
		var t *time.Timer
		var timer <-chan time.Time
		switch b.State() {
		case Closed:
			return nil
		case HalfOpen:
			if probing == 0 {
				return nil
			}
		case Open:
			t = time.NewTimer(max(time.Until(opened.Add(b.cfg.OpenFor)), time.Millisecond))
			timer = t.C
		}
		select {
		case <-ch:
		case <-timer:
		case <-ctx.Done():
		}
		if t != nil {
			t.Stop()
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// Do runs send through the breaker. While the breaker is open, or half-open
// with its probe taken, send is not called and the error is a pause
// (failure.IsPaused).
func (b *Breaker) Do(send func() (channels.Receipt, error)) (channels.Receipt, error) {
	probe := b.State() == HalfOpen
	if probe {
		b.mu.Lock()
		b.probing++
		b.mu.Unlock()
		defer func() {
			b.mu.Lock()
			b.probing--
			b.broadcastLocked()
			b.mu.Unlock()
		}()
	}
	r, err := b.cb.Execute(send)
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return r, failure.Paused(failure.ReasonUnavailable, fmt.Errorf("%s circuit breaker: %w", b.cfg.Name, err))
	}
	return r, err
}
