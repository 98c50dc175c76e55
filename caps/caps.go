// Package caps enforces frequency caps (templates/categories.yaml caps:):
// at most Max notifications of a category on a channel to one person per
// period, counted fleet-wide in Redis.
//
// The count is a sliding window of the notifications taken, by id: a
// notification taken twice (a redelivery, a retry) counts once, and "3 an
// hour" means at most 3 in any hour, not a rate that lets a fourth through
// 20 minutes later (as a token bucket's burst would).
package caps

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Limit is one cap.
type Limit struct {
	Max int
	Per time.Duration
}

// Decision is Take's answer.
type Decision struct {
	// Allowed means the notification is counted within the cap.
	Allowed bool
	// RetryAt is, when not allowed, when the window has room again.
	RetryAt time.Time
}

// Counter counts notifications against caps.
type Counter interface {
	// Take counts notification id under key (person, channel, category)
	// if the window ending at now has room for it, or it is already
	// counted there.
	Take(ctx context.Context, key, id string, l Limit, now time.Time) (Decision, error)
}

// Key is the counter key of a person's notifications of category on ch.
func Key(person, ch, category string) string {
	return "{" + person + "}:" + ch + ":" + category
}

// Redis is a Counter in Redis: one sorted set per key, id → time taken.
type Redis struct {
	c      redis.UniversalClient
	prefix string
}

// NewRedis returns a Counter on c; prefix "" means "herald:cap:".
func NewRedis(c redis.UniversalClient, prefix string) *Redis {
	if prefix == "" {
		prefix = "herald:cap:"
	}
	return &Redis{c: c, prefix: prefix}
}

// take: KEYS[1] the window; ARGV now ms, period ms, max, id.
// Returns {1, 0} when counted (or already), {0, retry ms} when full.
var take = redis.NewScript(`
local now, per, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - per)
if redis.call('ZSCORE', KEYS[1], ARGV[4]) then return {1, 0} end
if redis.call('ZCARD', KEYS[1]) < max then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], per)
  return {1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tonumber(oldest[2]) + per}
`)

// Take implements Counter.
func (r *Redis) Take(ctx context.Context, key, id string, l Limit, now time.Time) (Decision, error) {
	res, err := take.Run(ctx, r.c, []string{r.prefix + key},
		now.UnixMilli(), l.Per.Milliseconds(), strconv.Itoa(l.Max), id).Int64Slice()
	if err != nil {
		return Decision{}, err
	}
	if res[0] == 1 {
		return Decision{Allowed: true}, nil
	}
	return Decision{RetryAt: time.UnixMilli(res[1])}, nil
}

// Memory is a Counter in process, for tests and herald dev without Redis.
type Memory struct {
	mu sync.Mutex
	w  map[string]map[string]time.Time
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory { return &Memory{w: map[string]map[string]time.Time{}} }

// Take implements Counter.
func (m *Memory) Take(_ context.Context, key, id string, l Limit, now time.Time) (Decision, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.w[key]
	if w == nil {
		w = map[string]time.Time{}
		m.w[key] = w
	}
	var oldest time.Time
	for k, t := range w {
		if !t.After(now.Add(-l.Per)) {
			delete(w, k)
			continue
		}
		if oldest.IsZero() || t.Before(oldest) {
			oldest = t
		}
	}
	if _, ok := w[id]; ok {
		return Decision{Allowed: true}, nil
	}
	if len(w) < l.Max {
		w[id] = now
		return Decision{Allowed: true}, nil
	}
	return Decision{RetryAt: oldest.Add(l.Per)}, nil
}
