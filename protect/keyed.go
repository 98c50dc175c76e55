package protect

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/failure"
)

// Keyed is a channel whose messages go to several independent endpoints
// through one sender (webhook subscriptions, each its partner's server):
// one breaker per endpoint, keyed by the message's address. One endpoint
// that is down must not stop the others, so its open breaker does not
// pause the channel: its messages are not sent and fail at once
// (failure.Unsent), to take their step on the retry ladder. Only when no
// endpoint's breaker admits a call (each is open, or probing) does the
// channel pause (Wait, and a failure.Paused error), as a single provider's
// breaker does. Safe for concurrent use.
type Keyed struct {
	Next channels.Sender
	// Endpoints, when set, are the endpoints that exist now (the serving
	// subscriptions). An existing endpoint nothing has been sent to yet
	// admits calls, and a removed one's breaker no longer counts: without
	// it, only endpoints sent to count, so a restarted worker whose first
	// sends were a dead endpoint's retries paused the channel for every
	// other.
	Endpoints Endpoints
	cfg       BreakerConfig
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

// Endpoints says which endpoints a Keyed's channel has now.
type Endpoints interface {
	// Len is how many there are.
	Len() int
	// Has reports whether key is one of them.
	Has(key string) bool
}

// maxKeyed bounds the breakers a Keyed keeps: addresses come from
// configuration (a few subscriptions), but a record may name any. Past it,
// a new endpoint is sent to without a breaker rather than share one with
// others, which could refuse a healthy endpoint for a dead one.
const maxKeyed = 1000

// breaker returns key's breaker, made on first use; nil past maxKeyed.
func (k *Keyed) breaker(key string) *Breaker {
	k.mu.Lock()
	defer k.mu.Unlock()
	if b := k.breakers[key]; b != nil {
		return b
	}
	if len(k.breakers) >= maxKeyed {
		return nil
	}
	// A copy: the map and the state callback keep the key for the life of
	// the process, and m.To may be a substring of a whole Kafka record
	// (the worker's shared decode), which it would keep alive.
	key = strings.Clone(key)
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
// open (or its probe is out) the call is not made; the error is a pause
// when no endpoint admits a call, else failure.Unsent.
func (k *Keyed) Send(ctx context.Context, m *channels.Message) (channels.Receipt, error) {
	b := k.breaker(m.To)
	if b == nil {
		return k.Next.Send(ctx, m)
	}
	r, err := b.Do(func() (channels.Receipt, error) { return k.Next.Send(ctx, m) })
	if failure.IsPaused(err) && k.Passing() {
		return r, failure.Unsent(failure.ReasonUnavailable, fmt.Errorf("%s %s: circuit breaker open; the other endpoints are served", k.cfg.Name, m.To))
	}
	return r, err
}

// Close implements channels.Sender.
func (k *Keyed) Close() error { return k.Next.Close() }

// Passing reports whether some endpoint's breaker admits a call now (or
// none has been made yet): the channel's consumer keeps going. It is asked
// before every record.
func (k *Keyed) Passing() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if e := k.Endpoints; e != nil {
		// Passing while some existing endpoint admits a call: one without
		// a breaker yet does.
		n := e.Len()
		down := 0
		for key, b := range k.breakers {
			if e.Has(key) && !b.Admits() {
				down++
			}
		}
		return n == 0 || down < n
	}
	if len(k.breakers) == 0 {
		return true
	}
	for _, b := range k.breakers {
		if b.Admits() {
			return true
		}
	}
	return false
}

// keyedPoll is how often Wait looks again while no endpoint admits a call:
// an endpoint's breaker half-opens on its own clock, and a new endpoint
// may appear (with hot-reloaded subscriptions).
const keyedPoll = 250 * time.Millisecond

// Wait implements kafkarun.Gate: it returns once some endpoint's breaker
// admits a call.
func (k *Keyed) Wait(ctx context.Context) error {
	for !k.Passing() {
		t := time.NewTimer(keyedPoll)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	return nil
}
