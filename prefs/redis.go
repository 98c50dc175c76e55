package prefs

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/internal/coalesce"
)

// DefaultPrefix is the Redis key prefix of people's preferences.
const DefaultPrefix = "herald:prefs:"

// Redis keeps each person's preferences as one string, the JSON of Prefs,
// at Prefix + "{" + person + "}": one key per person, so a change is one
// WATCH/MULTI on one key, and the hash tag keeps every command on one slot
// of a Cluster. Keys do not expire: an opt-out holds until the person
// changes it.
//
// Lookups, made by the dispatcher for every event's recipients, are
// coalesced like the idempotency and suppression lookups: concurrent
// lookups share one pipeline of GETs (which a Cluster client splits by
// node), so at load preferences cost a fraction of a round trip per event.
// Close stops the flusher.
type Redis struct {
	client redis.UniversalClient
	prefix string

	once       sync.Once
	q          *coalesce.Queue[[]string] // started by the first Lookup
	roundTrips atomic.Uint64
}

var _ Store = (*Redis)(nil)

// lookupBatchMax bounds the Lookup calls one pipeline answers.
const lookupBatchMax = 128

// maxUpdateTries bounds the optimistic retries of one Update. One person's
// record is changed by their own clicks, a STOP reply and an unsubscribe
// link: conflicts are rare, and a loser retries with jitter.
const maxUpdateTries = 50

// NewRedis returns a Store on client; prefix "" means DefaultPrefix. The
// client stays the caller's.
func NewRedis(client redis.UniversalClient, prefix string) *Redis {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &Redis{client: client, prefix: prefix}
}

// Key is where person's preferences are kept.
func (r *Redis) Key(person string) string { return r.prefix + "{" + person + "}" }

// Get implements Store.
func (r *Redis) Get(ctx context.Context, person string) (*Prefs, error) {
	if err := CheckPerson(person); err != nil {
		return nil, err
	}
	b, err := r.client.Get(ctx, r.Key(person)).Bytes()
	if errors.Is(err, redis.Nil) {
		return &Prefs{}, nil
	}
	if err != nil {
		return nil, unavailable("get", err)
	}
	return decode(person, b)
}

// Update implements Store with WATCH/MULTI: the transaction fails, and fn
// runs again on what is stored then, when the key changed in between.
func (r *Redis) Update(ctx context.Context, person string, fn func(*Prefs) error) (*Prefs, error) {
	if err := CheckPerson(person); err != nil {
		return nil, err
	}
	key := r.Key(person)
	var out *Prefs
	var refused error // fn's error or a corrupt record: not Redis's
	txf := func(tx *redis.Tx) error {
		p := &Prefs{}
		b, err := tx.Get(ctx, key).Bytes()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return err
		default:
			if p, refused = decode(person, b); refused != nil {
				return refused
			}
		}
		if refused = fn(p); refused != nil {
			return refused
		}
		p.tidy()
		var enc []byte
		if !p.Empty() {
			if enc, refused = encode(p); refused != nil {
				return refused
			}
		}
		_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			if enc == nil {
				pipe.Del(ctx, key)
			} else {
				pipe.Set(ctx, key, enc, 0)
			}
			return nil
		})
		out = p
		return err
	}
	for attempt := 1; ; attempt++ {
		refused = nil
		err := r.client.Watch(ctx, txf, key)
		switch {
		case refused != nil:
			return nil, refused
		case err == nil:
			return out, nil
		case !errors.Is(err, redis.TxFailedErr):
			return nil, unavailable("update", err)
		case attempt >= maxUpdateTries:
			return nil, unavailable("update", fmt.Errorf("%s changed %d times while being updated", key, attempt))
		}
		t := time.NewTimer(time.Duration(rand.Int64N(int64(attempt)*int64(time.Millisecond)) + 1))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, unavailable("update", ctx.Err())
		case <-t.C:
		}
	}
}

// Lookup implements Store.
func (r *Redis) Lookup(ctx context.Context, persons []string) (map[string]*Prefs, error) {
	valid := persons[:0:0]
	for _, p := range persons {
		if personRE.MatchString(p) {
			valid = append(valid, p)
		}
	}
	if len(valid) == 0 {
		return nil, nil
	}
	r.once.Do(func() { r.q = coalesce.New(lookupBatchMax, r.exec) })
	c := coalesce.NewCall(ctx, valid)
	if r.q == nil || !r.q.Enqueue(c) {
		return nil, unavailable("lookup", errClosed)
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		return nil, unavailable("lookup", ctx.Err())
	}
	if c.Err != nil {
		return nil, c.Err
	}
	return c.Val.(map[string]*Prefs), nil
}

var errClosed = errors.New("store is closed")

// exec answers one batch of lookups with one pipeline: a GET per distinct
// person.
func (r *Redis) exec(batch []*coalesce.Call[[]string]) {
	ctx := context.Background()
	index := map[string]int{}
	var people []string
	for _, c := range batch {
		for _, p := range c.Req {
			if _, ok := index[p]; !ok {
				index[p] = len(people)
				people = append(people, p)
			}
		}
	}
	pipe := r.client.Pipeline()
	cmds := make([]*redis.StringCmd, len(people))
	for i, p := range people {
		cmds[i] = pipe.Get(ctx, r.Key(p))
	}
	_, _ = pipe.Exec(ctx) // errors are per command; redis.Nil is "none stored"
	r.roundTrips.Add(1)
	for _, c := range batch {
		var out map[string]*Prefs // made for the first person found: most events' people have stored nothing
		for _, person := range c.Req {
			b, err := cmds[index[person]].Bytes()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if err != nil {
				c.Err = unavailable("lookup", err)
				break
			}
			// Decoded per call: each caller owns what it gets.
			p, err := decode(person, b)
			if err != nil {
				c.Err = err
				break
			}
			if out == nil {
				out = make(map[string]*Prefs)
			}
			out[person] = p
		}
		if c.Err == nil {
			c.Val = out
		}
	}
}

// RoundTrips returns how many lookup pipelines the store has sent.
func (r *Redis) RoundTrips() uint64 { return r.roundTrips.Load() }

// Close stops the lookup flusher after answering what it has accepted;
// Lookup fails afterwards. The client stays the caller's.
func (r *Redis) Close() error {
	r.once.Do(func() {}) // a store never looked up never starts its flusher
	if r.q != nil {
		r.q.Close()
	}
	return nil
}

// unavailable classifies a Redis error: retryable, since preferences that
// cannot be read must hold the event back, not send what a person may
// have switched off.
func unavailable(op string, err error) error {
	return failure.Retry(failure.ReasonUnavailable, fmt.Errorf("prefs: %s: %w", op, err))
}
