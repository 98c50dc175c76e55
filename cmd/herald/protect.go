package main

import (
	"fmt"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/protect"
	"github.com/gymhq/herald/suppress"
	"github.com/gymhq/herald/worker"
)

// protection is provider feedback and protection for the fleet's channels:
// the suppression list every channel worker consults and feeds, and each
// provider's circuit breaker (also the gate of its channel's consumer).
type protection struct {
	list     suppress.Store
	breakers map[notification.Channel]*protect.Breaker
	limiters map[notification.Channel]protect.Limiter // channels with a rate only
}

// protectProviders wraps every sender in a circuit breaker, makes the
// fleet-wide rate limiter of each channel that has a rate, and sets up the
// suppression list. With a Redis client
// (production, or herald dev with HERALD_REDIS_URL) both the list and the
// rate budget live in Redis and are shared by the fleet; without one (herald
// dev on its in-memory store) they are in-process.
func (f *fleet) protectProviders(rc redis.UniversalClient) error {
	f.prot.breakers = map[notification.Channel]*protect.Breaker{}
	f.prot.limiters = map[notification.Channel]protect.Limiter{}
	if rc != nil {
		f.prot.list = suppress.NewRedis(rc, "", nil)
	} else {
		f.prot.list = suppress.NewMemory(nil)
	}
	for ch, s := range f.senders {
		ps, err := f.guard(ch, s)
		if err != nil {
			return err
		}
		f.prot.breakers[ch] = ps.Breaker
		f.senders[ch] = ps
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

// guard wraps one channel's sender in its circuit breaker, which reports to
// the metrics and logs.
func (f *fleet) guard(ch notification.Channel, next channels.Sender) (*protect.Sender, error) {
	c := string(ch)
	gauge := f.metrics.Protect.BreakerState.WithLabelValues(c)
	log := zap.NewNop() // a fleet built without a logger (the dev environment of some tests)
	if f.log != nil {
		log = f.log.With(zap.String("channel", c))
	}
	b, err := protect.NewBreaker(protect.BreakerConfig{
		Name: c, Failures: f.cfg.BreakerFailures, OpenFor: f.cfg.BreakerOpenFor,
		OnState: func(from, to protect.State) {
			gauge.Set(float64(to))
			f.metrics.Protect.BreakerTransitions.WithLabelValues(c, to.String()).Inc()
			if to == protect.Open {
				log.Warn("provider circuit breaker opened; channel paused", zap.String("from", from.String()), zap.Duration("probe_in", f.cfg.BreakerOpenFor))
			} else {
				log.Info("provider circuit breaker "+to.String(), zap.String("from", from.String()))
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("HERALD_BREAKER_FAILURES/HERALD_BREAKER_OPEN_FOR: %w", err)
	}
	ps := &protect.Sender{Next: next, Breaker: b}
	return ps, nil
}

func channelRate(cfg *config.Config, ch notification.Channel) int {
	if d := channels.Lookup(ch); d != nil && d.Rate != nil {
		return d.Rate(cfg)
	}
	return 0
}

// gate is the consumer gate of a role: its provider's breaker, or none.
func (f *fleet) gate(role config.Role) kafkarun.Gate {
	if b := f.prot.breakers[notification.Channel(role)]; b != nil {
		return b
	}
	return nil
}
