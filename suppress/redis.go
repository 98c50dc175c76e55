package suppress

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/internal/coalesce"
	"github.com/gymhq/herald/notification"
)

// DefaultPrefix is the Redis key prefix of the lists.
const DefaultPrefix = "herald:suppress:"

// Redis keeps one hash per channel, Prefix+channel, whose fields are
// normalised addresses and whose values are "reason unix-millis". A hash
// makes the check before every send one HGET, an opt-in one HDEL, and the
// operator's list one HSCAN without touching any other key. Entries do not
// expire: an address that cannot receive stays that way until an operator
// removes it.
//
// Lookups, made before every send, are coalesced like the idempotency
// store's calls: concurrent lookups share one pipeline, so at load the list
// costs a fraction of a round trip per message. Close stops the flusher.
type Redis struct {
	client redis.UniversalClient
	prefix string
	now    func() time.Time

	once       sync.Once
	q          *coalesce.Queue[hget] // started by the first Lookup
	roundTrips atomic.Uint64
}

// hget is one queued lookup.
type hget struct{ key, field string }

// lookupBatchMax bounds the HGETs in one pipeline.
const lookupBatchMax = 256

var _ Store = (*Redis)(nil)

// NewRedis returns a Store on client; prefix "" means DefaultPrefix, now nil
// means time.Now. The client stays the caller's.
func NewRedis(client redis.UniversalClient, prefix string, now func() time.Time) *Redis {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if now == nil {
		now = time.Now
	}
	return &Redis{client: client, prefix: prefix, now: now}
}

// Add implements Store.
func (r *Redis) Add(ctx context.Context, channel, address, reason string) error {
	address = Normalize(channel, address)
	if err := check(channel, address); err != nil {
		return err
	}
	v := reason + " " + strconv.FormatInt(r.now().UnixMilli(), 10)
	if err := r.client.HSetNX(ctx, r.prefix+channel, address, v).Err(); err != nil {
		return unavailable("add", err)
	}
	return nil
}

// Lookup implements Store.
func (r *Redis) Lookup(ctx context.Context, channel, address string) (Entry, bool, error) {
	address = Normalize(channel, address)
	if err := check(channel, address); err != nil {
		return Entry{}, false, err
	}
	r.once.Do(func() { r.q = coalesce.New(lookupBatchMax, r.exec) })
	c := coalesce.NewCall(ctx, hget{key: r.prefix + channel, field: address})
	if r.q == nil || !r.q.Enqueue(c) {
		return Entry{}, false, unavailable("lookup", errClosed)
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		return Entry{}, false, unavailable("lookup", ctx.Err())
	}
	if c.Err == redis.Nil {
		return Entry{}, false, nil
	}
	if c.Err != nil {
		return Entry{}, false, unavailable("lookup", c.Err)
	}
	return parse(channel, address, c.Val.(string)), true, nil
}

var errClosed = errors.New("list is closed")

// exec sends one batch of lookups as a pipeline.
func (r *Redis) exec(batch []*coalesce.Call[hget]) {
	ctx := context.Background()
	pipe := r.client.Pipeline()
	cmds := make([]*redis.StringCmd, len(batch))
	for i, c := range batch {
		cmds[i] = pipe.HGet(ctx, c.Req.key, c.Req.field)
	}
	_, _ = pipe.Exec(ctx) // errors are per command; redis.Nil is "not suppressed"
	r.roundTrips.Add(1)
	for i, c := range batch {
		c.Val, c.Err = cmds[i].Val(), cmds[i].Err()
	}
}

// RoundTrips returns how many lookup pipelines the list has sent.
func (r *Redis) RoundTrips() uint64 { return r.roundTrips.Load() }

// Close stops the lookup flusher after answering what it has accepted;
// Lookup fails afterwards. The client stays the caller's.
func (r *Redis) Close() error {
	r.once.Do(func() {}) // a list never looked up never starts its flusher
	if r.q != nil {
		r.q.Close()
	}
	return nil
}

// Remove implements Store.
func (r *Redis) Remove(ctx context.Context, channel, address string) (bool, error) {
	address = Normalize(channel, address)
	if err := check(channel, address); err != nil {
		return false, err
	}
	n, err := r.client.HDel(ctx, r.prefix+channel, address).Result()
	if err != nil {
		return false, unavailable("remove", err)
	}
	return n == 1, nil
}

// List implements Store.
func (r *Redis) List(ctx context.Context, channel string) ([]Entry, error) {
	var chans []string
	for _, ch := range notification.Known() {
		chans = append(chans, string(ch))
	}
	if channel != "" {
		if !validChannel(channel) {
			return nil, fmt.Errorf("%w: unknown channel %q (want %s)", ErrInvalid, channel, notification.Names())
		}
		chans = []string{channel}
	}
	var out []Entry
	for _, ch := range chans {
		it := r.client.HScan(ctx, r.prefix+ch, 0, "", 500).Iterator()
		for it.Next(ctx) {
			field := it.Val()
			if !it.Next(ctx) {
				break
			}
			out = append(out, parse(ch, field, it.Val()))
		}
		if err := it.Err(); err != nil {
			return nil, unavailable("list", err)
		}
	}
	sortEntries(out)
	return out, nil
}

func parse(channel, address, v string) Entry {
	e := Entry{Channel: channel, Address: address, Reason: v}
	if reason, ms, ok := strings.Cut(v, " "); ok {
		e.Reason = reason
		if n, err := strconv.ParseInt(ms, 10, 64); err == nil {
			e.At = time.UnixMilli(n).UTC()
		}
	}
	return e
}

func sortEntries(es []Entry) {
	sort.Slice(es, func(i, j int) bool {
		if es[i].Channel != es[j].Channel {
			return es[i].Channel < es[j].Channel
		}
		return es[i].Address < es[j].Address
	})
}

// unavailable classifies a Redis error: always retryable, since a list that
// cannot be read must hold the message back, not let it through.
func unavailable(op string, err error) error {
	return failure.Retry(failure.ReasonUnavailable, fmt.Errorf("suppress: %s: %w", op, err))
}
