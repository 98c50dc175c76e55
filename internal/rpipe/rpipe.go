// Package rpipe sends the Redis commands of a channel worker's hot path in
// shared pipelines: the idempotency store's scripts (dedupe) and the
// suppression list's lookups (suppress). Each call queues one command; one
// flusher sends whatever is queued as one pipeline the moment it is free
// (internal/coalesce), and hands each caller its own reply.
//
// One Pipes per Redis client, shared by both stores, puts a notification's
// suppression lookup in the same pipeline as its claim, and everyone's
// lookups in the pipelines the claims and outcome marks already pay for: a
// pipeline costs a round trip and two system calls on each side, whatever
// it holds.
package rpipe

import (
	"context"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/gymhq/herald/internal/coalesce"
)

// DefaultMax is the most commands in one pipeline unless New is told
// otherwise.
const DefaultMax = 256

// Cmd is one command: a script run on one key, or an HGET.
type Cmd struct {
	// Script, when set, is run on Key with Args: EVALSHA, and EVAL again
	// when the server answers NOSCRIPT (a restarted or failed-over server
	// has an empty script cache; a NOSCRIPT command did not run, so sending
	// it again is safe, and EVAL caches the script).
	Script *redis.Script
	Key    string
	Args   []any
	// Field, when Script is nil, makes the command HGET Key Field; a
	// missing field is the error redis.Nil.
	Field string
}

// Call is one queued command and, once Done is closed, its reply.
type Call = coalesce.Call[Cmd]

// Pipes is one flusher of shared pipelines on one client.
type Pipes struct {
	client     redis.UniversalClient
	q          *coalesce.Queue[Cmd]
	roundTrips atomic.Uint64
	// shas are the scripts' SHA-1s in interfaces, made once: only the
	// flusher (exec) reads and writes it.
	shas map[*redis.Script]any
}

// New starts the flusher of pipelines of at most max commands (DefaultMax
// when max <= 0) on client. The client stays the caller's; Close stops the
// flusher.
func New(client redis.UniversalClient, max int) *Pipes {
	if max <= 0 {
		max = DefaultMax
	}
	p := &Pipes{client: client, shas: map[*redis.Script]any{}}
	p.q = coalesce.New(max, p.exec)
	return p
}

// Client is the client the pipelines go through.
func (p *Pipes) Client() redis.UniversalClient { return p.client }

// Start queues cmd and returns its call, whose Done closes when the reply
// is in (or when ctx ended before it was sent); it returns nil when the
// flusher is closed.
func (p *Pipes) Start(ctx context.Context, cmd Cmd) *Call {
	c := coalesce.NewCall(ctx, cmd)
	if !p.q.Enqueue(c) {
		return nil
	}
	return c
}

// Queue queues cmd like Start, without sending it: it goes with the next
// command Start queues, in the same pipeline if the flusher is idle until
// then. Call Kick before waiting for it, in case no Start follows.
func (p *Pipes) Queue(ctx context.Context, cmd Cmd) *Call {
	c := coalesce.NewCall(ctx, cmd)
	if !p.q.Add(c) {
		return nil
	}
	return c
}

// Kick sends what is queued now, if the flusher is idle.
func (p *Pipes) Kick() { p.q.Kick() }

// RoundTrips returns how many pipelines have been sent, including those
// that load scripts after a server restart.
func (p *Pipes) RoundTrips() uint64 { return p.roundTrips.Load() }

// Close stops the flusher after it has sent what is queued: every call
// Start accepted gets its reply.
func (p *Pipes) Close() { p.q.Close() }

// evalSha is the EVALSHA command of s on key with args, as s.EvalSha
// writes it (the script's SHA-1 computed from its source, one key), in
// one slice: Script.EvalSha built a key slice and a second argument
// slice and boxed the command's name and the SHA-1 again for every call,
// four of a channel worker's allocations per script call (issue 14). A
// Redis Cluster client routes it by the same key, the command's fourth
// argument.
func (p *Pipes) evalSha(s *redis.Script, key string, args []any) []any {
	sha, ok := p.shas[s]
	if !ok {
		sha = s.Hash()
		p.shas[s] = sha
	}
	cmd := make([]any, 0, 4+len(args))
	cmd = append(cmd, "evalsha", sha, 1, key)
	return append(cmd, args...)
}

// exec sends one batch as a pipeline, then the batch's NOSCRIPT commands
// again with EVAL.
func (p *Pipes) exec(batch []*Call) {
	ctx := context.Background()
	pipe := p.client.Pipeline()
	cmds := make([]redis.Cmder, len(batch))
	for i, c := range batch {
		if s := c.Req.Script; s != nil {
			cmd := pipe.Do(ctx, p.evalSha(s, c.Req.Key, c.Req.Args)...)
			cmd.SetFirstKeyPos(3) // as Script.EvalSha does: a cluster routes by the key without parsing the key count
			cmds[i] = cmd
		} else {
			cmds[i] = pipe.HGet(ctx, c.Req.Key, c.Req.Field)
		}
	}
	_, _ = pipe.Exec(ctx) // errors are per command
	p.roundTrips.Add(1)

	var retry []int
	for i, cmd := range cmds {
		// HasErrorPrefix allocates even for no error (errors.As's target
		// escapes): one allocation per command, for the rare NOSCRIPT.
		if err := cmd.Err(); err != nil && batch[i].Req.Script != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			retry = append(retry, i)
		}
	}
	if len(retry) > 0 {
		pipe = p.client.Pipeline()
		for _, i := range retry {
			c := batch[i]
			cmds[i] = c.Req.Script.Eval(ctx, pipe, []string{c.Req.Key}, c.Req.Args...)
		}
		_, _ = pipe.Exec(ctx)
		p.roundTrips.Add(1)
	}

	for i, c := range batch {
		switch cmd := cmds[i].(type) {
		case *redis.Cmd:
			c.Val, c.Err = cmd.Val(), cmd.Err()
		case *redis.StringCmd:
			c.Val, c.Err = cmd.Val(), cmd.Err()
		}
	}
}
