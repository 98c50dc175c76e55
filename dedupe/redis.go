package dedupe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/internal/rpipe"
)

// Key layout
//
// Each notification id is one Redis hash at Prefix+id:
//
//	s  state: in_flight | sent | failed
//	o  owner: the lease holder, or the owner that recorded the outcome
//	p  provider message id (sent only)
//	r  permanent failure reason (failed only)
//	t  time of the last transition, Unix milliseconds from Options.Clock
//
// An in-flight key expires after its lease (PEXPIRE), so a crashed owner's
// claim frees itself; a sent or failed key expires after Options.Retention.
// A hash rather than one encoded string keeps owners, provider ids and
// reasons free of any separator rules and readable with HGETALL.
//
// Every transition is one Lua script, so it is atomic on the server and each
// call is one command in a pipeline.

// claimScript: KEYS[1] key; ARGV owner, lease ms, now ms.
// Returns {1} when acquired, else {0, state, owner, provider id, reason, pttl}.
var claimScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 's', 'o', 'p', 'r')
if not v[1] or (v[1] == 'in_flight' and v[2] == ARGV[1]) then
  redis.call('HSET', KEYS[1], 's', 'in_flight', 'o', ARGV[1], 't', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1}
end
return {0, v[1], v[2] or '', v[3] or '', v[4] or '', redis.call('PTTL', KEYS[1])}
`)

// getScript: KEYS[1] key. Returns {0} when absent, else like claimScript.
var getScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 's', 'o', 'p', 'r')
if not v[1] then
  return {0}
end
return {0, v[1], v[2] or '', v[3] or '', v[4] or '', redis.call('PTTL', KEYS[1])}
`)

// markSentScript: KEYS[1] key; ARGV owner, provider id, retention ms, now ms.
// Returns 0 when recorded, 1 when this owner had already recorded this
// provider id (a retried call), 2 when the key was already sent by another
// owner or with another provider id: the message went out twice.
var markSentScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 's', 'o', 'p')
if v[1] == 'sent' then
  if v[2] == ARGV[1] and v[3] == ARGV[2] then
    return 1
  end
  return 2
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 's', 'sent', 'o', ARGV[1], 'p', ARGV[2], 't', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 0
`)

// markFailedScript: KEYS[1] key; ARGV owner, reason, retention ms, now ms.
// Returns 0 when recorded, 1 when the key was already sent (left as is).
var markFailedScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 's') == 'sent' then
  return 1
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 's', 'failed', 'o', ARGV[1], 'r', ARGV[2], 't', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 0
`)

// releaseScript: KEYS[1] key; ARGV owner. Returns 1 when released.
var releaseScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 's', 'o')
if v[1] == 'in_flight' and v[2] == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`)

// Redis is the production Store.
//
// Calls are coalesced: each call queues one script invocation, and a single
// background flusher sends everything queued as one pipeline (up to
// BatchMax commands), then hands each caller its own reply
// (internal/rpipe). A lone caller is sent at once, without a timer, so
// coalescing adds no latency when idle and saves round trips under load.
// With Options.Pipes the pipelines are shared with the suppression list's
// lookups on the same client. RoundTrips counts the pipelines sent.
//
// A caller whose ctx ends stops waiting and gets a retryable error; if its
// command was already sent it still takes effect. For Claim that means a
// lease may be held by an owner that has gone; it expires with the lease,
// and the same owner's retry re-enters it. Nothing releases it on the
// caller's behalf, since that could free a lease the caller re-took.
//
// The pipeline itself runs with the client's own dial, read and write
// timeouts; configure those on the client (see Open).
type Redis struct {
	opts  Options
	pipes *rpipe.Pipes
	own   bool // pipes were made by NewRedis, and Close stops them

	duplicateSends atomic.Uint64

	// The scripts' arguments that stay the same, in interfaces made once
	// rather than per call (issue 14): the retention, and the last lease
	// (one per worker configuration). The owner is not among them: a
	// worker claims with a new owner per handler call (worker.go), so that
	// two copies of a notification never both hold it.
	retention any
	lease     atomic.Pointer[boxedLease]
}

// boxedLease is a lease in milliseconds, and the same in an interface.
type boxedLease struct {
	ms  int64
	arg any
}

// leaseArg returns ms in an interface: the last one's when it is the same.
func (r *Redis) leaseArg(ms int64) any {
	if b := r.lease.Load(); b != nil && b.ms == ms {
		return b.arg
	}
	b := &boxedLease{ms: ms, arg: ms}
	r.lease.Store(b)
	return b.arg
}

var _ Store = (*Redis)(nil)

// NewRedis returns a Store on client, or on opts.Pipes when set (then
// client is not used, and may be nil). The client stays the caller's:
// Close stops the store's own flusher but does not close the client, nor
// shared Pipes.
func NewRedis(client redis.UniversalClient, opts Options) *Redis {
	r := &Redis{opts: opts.withDefaults(), pipes: opts.Pipes}
	r.retention = r.opts.Retention.Milliseconds()
	if r.pipes == nil {
		r.pipes, r.own = rpipe.New(client, r.opts.BatchMax), true
	}
	return r
}

// RoundTrips returns how many pipelines the store's flusher has sent,
// including fallbacks that load scripts after a server restart (and, with
// shared Pipes, the pipelines of the other stores on them).
func (r *Redis) RoundTrips() uint64 { return r.pipes.RoundTrips() }

// DuplicateSends returns how many MarkSent calls found the key already sent
// by another owner or with another provider id: each is a message that went
// out twice (the admitted duplicate window, docs/contracts.md §3).
func (r *Redis) DuplicateSends() uint64 { return r.duplicateSends.Load() }

// Close stops the flusher after it has sent what is already queued, unless
// it is shared (Options.Pipes), which its maker stops. It does not close
// the client.
func (r *Redis) Close() error {
	if r.own {
		r.pipes.Close()
	}
	return nil
}

// Claim implements Store.
func (r *Redis) Claim(ctx context.Context, id, owner string, lease time.Duration) (Claim, error) {
	if err := checkOwner("claim", id, owner); err != nil {
		return Claim{}, err
	}
	if err := checkLease(id, lease); err != nil {
		return Claim{}, err
	}
	v, err := r.do(ctx, "claim", id, claimScript, owner, r.leaseArg(lease.Milliseconds()), r.now())
	if err != nil {
		return Claim{}, err
	}
	c, err := decodeClaim("claim", id, v)
	if err != nil {
		return Claim{}, err
	}
	if c.Acquired {
		c.State, c.Owner, c.LeaseLeft = StateInFlight, owner, lease.Truncate(time.Millisecond)
	}
	return c, nil
}

// Get implements Store.
func (r *Redis) Get(ctx context.Context, id string) (Claim, error) {
	if err := checkID("get", id); err != nil {
		return Claim{}, err
	}
	v, err := r.do(ctx, "get", id, getScript)
	if err != nil {
		return Claim{}, err
	}
	return decodeClaim("get", id, v)
}

// MarkSent implements Store.
func (r *Redis) MarkSent(ctx context.Context, id, owner, providerMessageID string) error {
	if err := checkOwner("mark sent", id, owner); err != nil {
		return err
	}
	v, err := r.do(ctx, "mark sent", id, markSentScript, owner, providerMessageID, r.retention, r.now())
	if err != nil {
		return err
	}
	if n, _ := v.(int64); n == 2 {
		r.duplicateSends.Add(1)
	}
	return nil
}

// MarkFailed implements Store.
func (r *Redis) MarkFailed(ctx context.Context, id, owner, reason string) error {
	if err := checkOwner("mark failed", id, owner); err != nil {
		return err
	}
	_, err := r.do(ctx, "mark failed", id, markFailedScript, owner, reason, r.retention, r.now())
	return err
}

// Release implements Store.
func (r *Redis) Release(ctx context.Context, id, owner string) error {
	if err := checkOwner("release", id, owner); err != nil {
		return err
	}
	_, err := r.do(ctx, "release", id, releaseScript, owner)
	return err
}

func (r *Redis) now() int64 { return r.opts.Clock().UnixMilli() }

// do queues one script call on id's key and waits for its reply or ctx.
func (r *Redis) do(ctx context.Context, op, id string, s *redis.Script, args ...any) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr(op, id, err)
	}
	c := r.pipes.Start(ctx, rpipe.Cmd{Script: s, Key: r.opts.Prefix + id, Args: args})
	if c == nil {
		return nil, errClosed
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		return nil, ctxErr(op, id, ctx.Err())
	}
	if c.Err != nil {
		return nil, classify(op, id, c.Err)
	}
	return c.Val, nil
}

// classify decides, in one place, what a Redis error means for the
// message: every one is retryable, because an idempotency store that cannot
// answer must make the worker wait, never send unguarded and never give up.
// The reason says which kind of outage it was, for metrics and logs.
func classify(op, id string, err error) error {
	reason := failure.ReasonNetwork // refused, reset, EOF, closed pool
	var rerr redis.Error
	var nerr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.As(err, &nerr) && nerr.Timeout():
		reason = failure.ReasonTimeout
	case errors.As(err, &rerr):
		// A reply from the server: LOADING, READONLY, OOM, BUSY,
		// CLUSTERDOWN ... it is up but not serving us now.
		reason = failure.ReasonUnavailable
	}
	return failure.Retry(reason, fmt.Errorf("dedupe: %s %s: %w", op, id, err))
}

// decodeClaim reads the reply of claimScript or getScript.
func decodeClaim(op, id string, v any) (Claim, error) {
	a, ok := v.([]any)
	if !ok || len(a) == 0 {
		return Claim{}, badReply(op, id, v)
	}
	if n, _ := a[0].(int64); n == 1 {
		return Claim{Acquired: true}, nil
	}
	if len(a) == 1 {
		return Claim{}, nil
	}
	if len(a) != 6 {
		return Claim{}, badReply(op, id, v)
	}
	var c Claim
	var s string
	s, _ = a[1].(string)
	c.State = State(s)
	c.Owner, _ = a[2].(string)
	c.ProviderMessageID, _ = a[3].(string)
	c.Reason, _ = a[4].(string)
	if c.State == StateInFlight {
		if ms, _ := a[5].(int64); ms > 0 {
			c.LeaseLeft = time.Duration(ms) * time.Millisecond
		}
	}
	return c, nil
}

func badReply(op, id string, v any) error {
	return failure.Errorf(failure.Retryable, failure.ReasonUnknown, "dedupe: %s %s: unexpected reply %v", op, id, v)
}
