package schedule

import (
	"context"
	"sync"
)

// combiner makes one script call of concurrent calls to the Redis index.
// The scheduler's consumer applies records one at a time per key, many keys
// at once; each schedule record was one EVALSHA of the add script and each
// done record one of the done script, a round trip and a script run on
// Redis's one thread apiece, though both scripts take any number of
// entries and every key of the index is in one hash slot.
//
// There is no goroutine and no timer: a call made while none is out runs
// at once, alone. Calls made while one is out wait; when it is back, its
// caller hands every waiting call, up to max items, to the first of them,
// which runs them as one and hands on in turn. So a caller waits for at
// most its own call and the one ahead of it, and never runs calls after
// its own.
type combiner[Q, A any] struct {
	max  int                                    // most items in one call, unless one call alone has more
	size func(Q) int                            // a request's items
	run  func(context.Context, []*joined[Q, A]) // sets every call's ans and err

	mu      sync.Mutex
	busy    bool
	waiting []*joined[Q, A]
}

// joined is one call: its request, and once done is closed its answer.
type joined[Q, A any] struct {
	req  Q
	ans  A
	err  error
	done chan struct{}
	// lead is the batch this call is to run, when it was chosen to lead.
	lead []*joined[Q, A]
}

// do runs req in the next call and returns its answer.
func (c *combiner[Q, A]) do(ctx context.Context, req Q) (A, error) {
	me := &joined[Q, A]{req: req, done: make(chan struct{})}
	c.mu.Lock()
	if !c.busy {
		c.busy = true
		me.lead = []*joined[Q, A]{me}
		c.mu.Unlock()
	} else {
		c.waiting = append(c.waiting, me)
		c.mu.Unlock()
		// Not ctx.Done: a waiting call may be chosen to lead, and the
		// calls it then holds must run. The wait is one call of the
		// Redis client's own timeouts.
		<-me.done
	}
	if me.lead != nil {
		batch := me.lead
		// Not the leader's own cancellation: the batch holds others'
		// calls (a partition revoked from this one, say, would fail
		// theirs). The Redis client's timeouts bound the call.
		c.run(context.WithoutCancel(ctx), batch)
		c.handOn()
		for _, j := range batch {
			if j != me {
				close(j.done)
			}
		}
	}
	return me.ans, me.err
}

// handOn gives the waiting calls, up to max items, to the first of them,
// or marks the combiner idle.
func (c *combiner[Q, A]) handOn() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.waiting) == 0 {
		c.busy = false
		return
	}
	n, items := 0, 0
	for n < len(c.waiting) && (n == 0 || items+c.size(c.waiting[n].req) <= c.max) {
		items += c.size(c.waiting[n].req)
		n++
	}
	next := make([]*joined[Q, A], n)
	copy(next, c.waiting)
	c.waiting = append(c.waiting[:0], c.waiting[n:]...)
	next[0].lead = next
	close(next[0].done)
}
