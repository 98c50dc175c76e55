package main

import (
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/channels/failover"
	"github.com/gymhq/herald/channels/webhook"
	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/pipeline"
	"github.com/gymhq/herald/protect"
	"github.com/gymhq/herald/suppress"
	"github.com/gymhq/herald/worker"
)

// protection is provider feedback and protection for the fleet's channels:
// the suppression list every channel worker consults and feeds, each
// channel's fleet-wide rate, and each provider's guard (its circuit
// breaker, also the gate of its channel's consumer), built with the stage
// by pipeline.NewBreaker.
type protection struct {
	list     suppress.Store
	limiters map[notification.Channel]protect.Limiter // channels with a rate only
	// guards are built when the stages are (guard); a test may set one
	// first.
	guards map[notification.Channel]pipeline.Guard
}

// protectProviders makes the fleet-wide rate limiter of each channel that
// has a rate, and sets up the suppression list. With a Redis client
// (production, or herald dev with HERALD_REDIS_URL) both the list and the
// rate budget live in Redis and are shared by the fleet; without one (herald
// dev on its in-memory store) they are in-process.
func (f *fleet) protectProviders(rc redis.UniversalClient) error {
	f.prot.guards = map[notification.Channel]pipeline.Guard{}
	f.prot.limiters = map[notification.Channel]protect.Limiter{}
	switch {
	case f.pipes != nil: // rc's: lookups travel with the idempotency calls
		f.prot.list = suppress.NewRedisOn(f.pipes, "", nil)
	case rc != nil:
		f.prot.list = suppress.NewRedis(rc, "", nil)
	default:
		f.prot.list = suppress.NewMemory(nil)
	}
	for ch := range f.senders {
		if rate := channelRate(f.cfg, ch); rate > 0 {
			f.prot.limiters[ch] = newLimiter(ch, rate, rc)
		}
	}
	return nil
}

// newLimiter is the channel's fleet-wide rate: in Redis when there is one,
// in process otherwise (herald dev on its in-memory store).
func newLimiter(ch notification.Channel, rate int, rc redis.UniversalClient) protect.Limiter {
	if rc != nil {
		return protect.NewRedisLimiter(rc, "herald:"+string(ch), rate)
	}
	return protect.NewMemoryLimiter(rate)
}

// limiter is the worker's view of a channel's limiter; nil when unlimited.
func (f *fleet) limiter(ch notification.Channel) worker.Limiter {
	if l := f.prot.limiters[ch]; l != nil {
		return l
	}
	return nil
}

// guard is the channel's provider behind its circuit breaker, made once.
func (f *fleet) guard(c pipeline.Common, ch notification.Channel) (pipeline.Guard, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if g := f.prot.guards[ch]; g != nil {
		return g, nil
	}
	sender := f.senders[ch]
	if sender == nil {
		return nil, fmt.Errorf("no sender for channel %s", ch)
	}
	if g, ok := sender.(pipeline.Guard); ok {
		// Several providers (channels/failover): each has its own breaker,
		// and the channel pauses only when all are open.
		f.observeProviders(ch, g)
		f.prot.guards[ch] = g
		return g, nil
	}
	if ch == webhook.Name {
		// Each subscription is its partner's own server: one breaker
		// each, so one partner that is down does not stop the others.
		g, err := f.keyedGuard(ch, sender)
		if err != nil {
			return nil, err
		}
		f.prot.guards[ch] = g
		return g, nil
	}
	g, err := pipeline.NewBreaker(c, ch, sender)
	if err != nil {
		return nil, err
	}
	f.prot.guards[ch] = g
	return g, nil
}

// keyedGuard is a channel of independent endpoints (webhook subscriptions)
// behind one breaker per endpoint (protect.Keyed), reported per endpoint
// as a failover's providers are (herald_provider_breaker_state{channel,
// provider}), and as the channel's state, open only when every endpoint is
// and the channel pauses (no endpoint admits a call).
func (f *fleet) keyedGuard(ch notification.Channel, sender channels.Sender) (*protect.Keyed, error) {
	c := string(ch)
	log := f.logger().With(zap.String("channel", c))
	m := f.metrics.Protect
	var k *protect.Keyed
	var mu sync.Mutex
	count := openEndpoints(m.EndpointsOpen.WithLabelValues(c))
	onState := func(key string, from, to protect.State) {
		m.ProviderBreakerState.WithLabelValues(c, key).Set(float64(to))
		count(key, to)
		m.BreakerTransitions.WithLabelValues(c, to.String()).Inc()
		if to == protect.Open {
			log.Warn("endpoint circuit breaker opened; its messages wait on the retry ladder, the other endpoints are served",
				zap.String("endpoint", key), zap.String("from", from.String()), zap.Duration("probe_in", f.cfg.BreakerOpenFor))
		} else {
			log.Info("endpoint circuit breaker "+to.String(), zap.String("endpoint", key), zap.String("from", from.String()))
		}
		// Runs under the endpoint breaker's lock: the channel's state is
		// read after it, on another goroutine.
		go func() {
			mu.Lock()
			defer mu.Unlock()
			if k == nil {
				return
			}
			if k.Passing() {
				m.BreakerState.WithLabelValues(c).Set(float64(protect.Closed))
			} else {
				m.BreakerState.WithLabelValues(c).Set(float64(protect.Open))
				log.Warn("every endpoint's circuit breaker is open; channel paused", zap.Duration("probe_in", f.cfg.BreakerOpenFor))
			}
		}()
	}
	var err error
	mu.Lock()
	k, err = protect.NewKeyed(sender, protect.BreakerConfig{Name: c, Failures: f.cfg.BreakerFailures, OpenFor: f.cfg.BreakerOpenFor}, onState)
	if err == nil {
		if e, ok := endpointsOf(sender); ok {
			k.Endpoints = e // the serving subscriptions, not only those sent to
		}
	}
	mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("HERALD_BREAKER_FAILURES/HERALD_BREAKER_OPEN_FOR: %w", err)
	}
	m.BreakerState.WithLabelValues(c).Set(float64(protect.Closed))
	return k, nil
}

// endpointsOf finds the webhook sender's subscriptions under herald dev's
// outbox wrapper.
func endpointsOf(s channels.Sender) (webhook.Endpoints, bool) {
	if id, ok := s.(identifying); ok {
		s = id.Sender
	}
	ws, ok := s.(interface{ Endpoints() webhook.Endpoints })
	if !ok {
		return webhook.Endpoints{}, false
	}
	return ws.Endpoints(), true
}

// openEndpoints returns a function that keeps gauge at the number of
// endpoints whose last state was open (herald_endpoints_open).
func openEndpoints(gauge prometheus.Gauge) func(key string, to protect.State) {
	var mu sync.Mutex
	open := map[string]bool{}
	return func(key string, to protect.State) {
		mu.Lock()
		defer mu.Unlock()
		if to == protect.Open {
			open[key] = true
		} else {
			delete(open, key)
		}
		gauge.Set(float64(len(open)))
	}
}

// observeProviders reports a failover sender's providers to the metrics
// and the log.
func (f *fleet) observeProviders(ch notification.Channel, g pipeline.Guard) {
	fs, ok := unwrapFailover(g)
	if !ok {
		return
	}
	c := string(ch)
	log := f.logger().With(zap.String("channel", c))
	m := f.metrics.Protect
	for _, p := range fs.Providers() {
		m.ProviderBreakerState.WithLabelValues(c, p)
		m.ProviderSends.WithLabelValues(c, p, "sent")
		m.ProviderSends.WithLabelValues(c, p, "failed")
	}
	count := openEndpoints(m.EndpointsOpen.WithLabelValues(c))
	log.Info("sending through several providers, failing over between them", zap.Strings("providers", fs.Providers()))
	fs.Observe(failover.Observer{
		State: func(p string, from, to protect.State) {
			m.ProviderBreakerState.WithLabelValues(c, p).Set(float64(to))
			count(p, to)
			if to == protect.Open {
				log.Warn("provider out of the rotation; its traffic moves to the others", zap.String("provider", p), zap.Duration("probe_in", f.cfg.BreakerOpenFor))
			} else {
				log.Info("provider circuit breaker "+to.String(), zap.String("provider", p), zap.String("from", from.String()))
			}
		},
		Send: func(p string, err error) {
			outcome := "sent"
			if err != nil {
				outcome = "failed"
			}
			m.ProviderSends.WithLabelValues(c, p, outcome).Inc()
		},
	})
}

// unwrapFailover finds the failover sender in g (herald dev wraps it to
// identify deliveries).
func unwrapFailover(g pipeline.Guard) (*failover.Sender, bool) {
	for {
		switch s := g.(type) {
		case *failover.Sender:
			return s, true
		case identifyingGuard:
			g = s.guard
		default:
			return nil, false
		}
	}
}

func channelRate(cfg *config.Config, ch notification.Channel) int {
	if d := channels.Lookup(ch); d != nil && d.Rate != nil {
		return d.Rate(cfg)
	}
	return 0
}
