package suppress

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gymhq/herald/failure"
)

// DefaultPrefix is the Redis key prefix of the lists.
const DefaultPrefix = "herald:suppress:"

// Redis keeps one hash per channel, Prefix+channel, whose fields are
// normalised addresses and whose values are "reason unix-millis". A hash
// makes the check before every send one HGET, an opt-in one HDEL, and the
// operator's list one HSCAN without touching any other key. Entries do not
// expire: an address that cannot receive stays that way until an operator
// removes it.
type Redis struct {
	client redis.UniversalClient
	prefix string
	now    func() time.Time
}

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
	v, err := r.client.HGet(ctx, r.prefix+channel, address).Result()
	if err == redis.Nil {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, unavailable("lookup", err)
	}
	return parse(channel, address, v), true, nil
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
	chans := Channels
	if channel != "" {
		if !validChannel(channel) {
			return nil, fmt.Errorf("%w: unknown channel %q (want email, sms or push)", ErrInvalid, channel)
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
