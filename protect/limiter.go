// Package protect keeps herald from hurting its providers: a send rate shared
// by the whole fleet, and a circuit breaker per provider that pauses a
// channel while its provider is down instead of burning through retries.
//
// It wraps a channels.Sender (the breaker) and provides a Limiter that the
// channel worker waits on before each provider call. It knows Redis (for the
// shared rate) and nothing of Kafka, templates or the idempotency keys. When it holds a send
// back it returns an error for which failure.IsPaused is true: the send was
// not attempted, and the caller must treat the message as having no outcome.
package protect

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/gymhq/herald/failure"
)

// Limiter admits sends at a rate. Wait blocks until one send may go (it
// waits, never drops) and returns how long it waited.
type Limiter interface {
	Wait(ctx context.Context) (time.Duration, error)
}

// RedisLimiter is a GCRA limiter in Redis (github.com/go-redis/redis_rate):
// every worker of every pod that shares the key shares one budget, so adding
// replicas does not multiply the rate a provider sees. The burst equals the
// per-second rate, so over any interval T at most rate·T + rate sends pass.
type RedisLimiter struct {
	l     *redis_rate.Limiter
	key   string
	limit redis_rate.Limit
}

// NewRedisLimiter returns a limiter of perSecond sends per second, shared by
// everyone using key (herald uses "herald:<channel>", stored by redis_rate
// as "rate:herald:<channel>").
func NewRedisLimiter(client redis.UniversalClient, key string, perSecond int) *RedisLimiter {
	return &RedisLimiter{l: redis_rate.NewLimiter(client), key: key, limit: redis_rate.PerSecond(perSecond)}
}

// Wait implements Limiter. A Redis error is a pause (fail closed): the
// provider is not to be called unmetered.
func (r *RedisLimiter) Wait(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	for {
		res, err := r.l.Allow(ctx, r.key, r.limit)
		if err != nil {
			return time.Since(start), failure.Paused(failure.ReasonUnavailable, fmt.Errorf("rate limiter: %w", err))
		}
		if res.Allowed > 0 {
			return time.Since(start), nil
		}
		if err := sleep(ctx, max(res.RetryAfter, time.Millisecond)); err != nil {
			return time.Since(start), failure.Paused(failure.ReasonTimeout, fmt.Errorf("rate limiter: %w", err))
		}
	}
}

// MemoryLimiter is the same GCRA in process, for `herald dev` without Redis.
// It bounds one process only; production uses RedisLimiter.
type MemoryLimiter struct {
	interval time.Duration // between sends at the steady rate
	burst    time.Duration // how far ahead of schedule a send may be
	mu       sync.Mutex
	tat      time.Time // theoretical arrival time of the next send
}

// NewMemoryLimiter returns a limiter of perSecond sends per second with a
// burst of perSecond.
func NewMemoryLimiter(perSecond int) *MemoryLimiter {
	iv := time.Second / time.Duration(perSecond)
	return &MemoryLimiter{interval: iv, burst: iv * time.Duration(perSecond-1)}
}

// Wait implements Limiter.
func (m *MemoryLimiter) Wait(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	for {
		m.mu.Lock()
		now := time.Now()
		tat := m.tat
		if tat.Before(now) {
			tat = now
		}
		wait := tat.Sub(now) - m.burst
		if wait <= 0 {
			m.tat = tat.Add(m.interval)
			m.mu.Unlock()
			return time.Since(start), nil
		}
		m.mu.Unlock()
		if err := sleep(ctx, wait); err != nil {
			return time.Since(start), failure.Paused(failure.ReasonTimeout, fmt.Errorf("rate limiter: %w", err))
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
