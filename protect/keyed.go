package protect

import (
	"context"
	"fmt"
	"sync"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/failure"
)

// Keyed is a channel whose messages go to several independent endpoints
// through one sender (webhook subscriptions, each its partner's server):
// one breaker per endpoint, keyed by the message's address. One endpoint
// that is down must not stop the others, so its open breaker does not
// pause the channel: its messages fail at once, retryably, and wait on the
// retry ladder. Only when every endpoint that has been sent to is open
// does the channel pause (Wait), as a single provider's breaker does.
// Safe for concurrent use.
type Keyed struct {
	Next channels.Sender
	cfg  BreakerConfig
	// onState is told every endpoint's state changes.
	onState func(key string, from, to State)

	mu       sync.Mutex
	breakers map[string]*Breaker
}

// NewKeyed returns a Keyed over next whose breakers are each configured by
// cfg (Name prefixes the endpoint's key in errors; cfg.OnState is not
// used: onState, which may be nil, is told of every endpoint).
func NewKeyed(next channels.Sender, cfg BreakerConfig, onState func(key string, from, to State)) (*Keyed, error) {
	probe := cfg
	probe.OnState = nil
	if _, err := NewBreaker(probe); err != nil { // the settings, checked once
		return nil, err
	}
	return &Keyed{Next: next, cfg: cfg, onState: onState, breakers: map[string]*Breaker{}}, nil
}

// maxKeyed bounds the breakers a Keyed keeps: addresses come from
// configuration (a few subscriptions), but a record may name any. Past it,
// an unknown endpoint shares one breaker.
const maxKeyed = 1000

// breaker returns key's breaker, made on first use.
func (k *Keyed) breaker(key string) *Breaker {
	k.mu.Lock()
	defer k.mu.Unlock()
	if b := k.breakers[key]; b != nil {
		return b
	}
	if len(k.breakers) >= maxKeyed {
		key = ""
		if b := k.breakers[key]; b != nil {
			return b
		}
	}
	cfg := k.cfg
	cfg.Name = k.cfg.Name + " " + key
	if k.onState != nil {
		cfg.OnState = func(from, to State) { k.onState(key, from, to) }
	}
	b, err := NewBreaker(cfg)
	if err != nil {
		panic(err) // NewKeyed checked the same settings
	}
	k.breakers[key] = b
	return b
}

// Send implements channels.Sender: through m.To's breaker. While it is
// open the call is not made, and the error is retryable but not a pause,
// unless every endpoint is open.
func (k *Keyed) Send(ctx context.Context, m *channels.Message) (channels.Receipt, error) {
	r, err := k.breaker(m.To).Do(func() (channels.Receipt, error) { return k.Next.Send(ctx, m) })
	if failure.IsPaused(err) && k.Passing() {
		return r, failure.Retry(failure.ReasonUnavailable, fmt.Errorf("%s %s: circuit breaker open, other endpoints still served; retried later", k.cfg.Name, m.To))
	}
	return r, err
}

// Close implements channels.Sender.
func (k *Keyed) Close() error { return k.Next.Close() }

// all returns the endpoints' breakers.
func (k *Keyed) all() []*Breaker {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]*Breaker, 0, len(k.breakers))
	for _, b := range k.breakers {
		out = append(out, b)
	}
	return out
}

// Passing reports whether some endpoint's breaker lets calls through (or
// none has been made yet): the channel's consumer keeps going.
func (k *Keyed) Passing() bool {
	bs := k.all()
	if len(bs) == 0 {
		return true
	}
	for _, b := range bs {
		if b.State() != Open {
			return true
		}
	}
	return false
}

// Wait implements kafkarun.Gate: it returns once some endpoint's breaker
// would let a call through.
func (k *Keyed) Wait(ctx context.Context) error {
	for !k.Passing() {
		bs := k.all()
		if len(bs) == 0 {
			return nil
		}
		// The first of them to leave the open state ends the wait; any
		// one will do, since each is checked again.
		done := make(chan struct{}, 1)
		wctx, cancel := context.WithCancel(ctx)
		for _, b := range bs {
			go func() {
				if b.Wait(wctx) == nil {
					select {
					case done <- struct{}{}:
					default:
					}
				}
			}()
		}
		select {
		case <-done:
		case <-ctx.Done():
		}
		cancel()
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}
