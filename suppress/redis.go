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
	"github.com/gymhq/herald/internal/rpipe"
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
// costs a fraction of a round trip per message. A list made by NewRedisOn
// sends them in pipelines shared with the idempotency store (internal/rpipe).
// Close stops the list's own flusher.
type Redis struct {
	client redis.UniversalClient
	prefix string
	now    func() time.Time

	once sync.Once
	// pipes are set once (once): shared by NewRedisOn, or the list's own
	// (own), started by the first lookup. Atomic for RoundTrips, which
	// does not start them.
	pipes atomic.Pointer[rpipe.Pipes]
	own   bool
}

// lookupBatchMax bounds the HGETs in one pipeline of the list's own.
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

// NewRedisOn is NewRedis on pipes' client, sending lookups in pipes: the
// pipelines the idempotency store on the same client sends (dedupe.Options.
// Pipes). Close leaves pipes to their maker.
func NewRedisOn(pipes *rpipe.Pipes, prefix string, now func() time.Time) *Redis {
	r := NewRedis(pipes.Client(), prefix, now)
	r.once.Do(func() { r.pipes.Store(pipes) })
	return r
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
	return r.start(ctx, channel, address, true).Wait()
}

// start queues the lookup of address on channel. Unless send, it waits in
// shared pipes for the next command queued there (Pending.Wait sends it if
// none came).
func (r *Redis) start(ctx context.Context, channel, address string, send bool) *Pending {
	p := &Pending{ctx: ctx, channel: channel, address: Normalize(channel, address)}
	if p.err = check(channel, p.address); p.err != nil {
		return p
	}
	r.once.Do(r.startPipes)
	if pipes := r.pipes.Load(); pipes != nil { // nil: closed before its first lookup
		cmd := rpipe.Cmd{Key: r.prefix + channel, Field: p.address}
		if send || r.own { // nobody else sends in the list's own pipes
			p.call = pipes.Start(ctx, cmd)
		} else {
			p.call, p.pipes = pipes.Queue(ctx, cmd), pipes
		}
	}
	if p.call == nil {
		p.err = unavailable("lookup", errClosed)
	}
	return p
}

// startPipes starts the list's own flusher.
func (r *Redis) startPipes() {
	r.own = true
	r.pipes.Store(rpipe.New(r.client, lookupBatchMax))
}

// Pending is a lookup started by Begin, answered by Wait.
type Pending struct {
	ctx              context.Context
	list             Store // looked up in Wait, for a Store that cannot start one
	channel, address string
	call             *rpipe.Call
	pipes            *rpipe.Pipes // to Kick, when the call was queued unsent
	err              error
}

// Begin starts looking address up on channel in s and returns the lookup,
// for Wait to answer. On a list made by NewRedisOn the lookup is queued in
// the shared pipes, to travel in the pipeline of the next idempotency call
// (a claim made between Begin and Wait); on one made by NewRedis it is sent
// at once; any other Store is asked in Wait.
func Begin(ctx context.Context, s Store, channel, address string) *Pending {
	if r, ok := s.(*Redis); ok {
		return r.start(ctx, channel, address, false)
	}
	return &Pending{ctx: ctx, list: s, channel: channel, address: address}
}

// Wait returns what Lookup would: the entry, whether there is one, and a
// classified error.
func (p *Pending) Wait() (Entry, bool, error) {
	if p.list != nil {
		return p.list.Lookup(p.ctx, p.channel, p.address)
	}
	if p.err != nil {
		return Entry{}, false, p.err
	}
	if p.pipes != nil {
		select {
		case <-p.call.Done(): // it went with the claim, as it should
		default:
			p.pipes.Kick() // queued unsent, and maybe nothing came to take it
		}
	}
	select {
	case <-p.call.Done():
	case <-p.ctx.Done():
		return Entry{}, false, unavailable("lookup", p.ctx.Err())
	}
	if p.call.Err == redis.Nil {
		return Entry{}, false, nil
	}
	if p.call.Err != nil {
		return Entry{}, false, unavailable("lookup", p.call.Err)
	}
	return parse(p.channel, p.address, p.call.Val.(string)), true, nil
}

var errClosed = errors.New("list is closed")

// RoundTrips returns how many pipelines the list's flusher has sent (with
// shared pipes, everyone's).
func (r *Redis) RoundTrips() uint64 {
	if p := r.pipes.Load(); p != nil {
		return p.RoundTrips()
	}
	return 0 // never looked up
}

// Close stops the list's own lookup flusher after answering what it has
// accepted; Lookup fails afterwards. A list made by NewRedisOn has no
// flusher of its own: its lookups go on working until the shared pipes'
// maker closes them. The client stays its maker's.
func (r *Redis) Close() error {
	r.once.Do(func() {}) // a list never looked up never starts its flusher
	if r.own {
		r.pipes.Load().Close()
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
