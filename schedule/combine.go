package schedule

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
)

// combiner makes one script call of concurrent calls to the Redis index.
// The scheduler's consumer applies records one at a time per key, many keys
// at once; each schedule record was one EVALSHA of the add script and each
// done record one of the done script, a round trip and a script run on
// Redis's one thread apiece, though both scripts take any number of
// entries and every key of the index is in one hash slot.
//
// There is no goroutine and no timer: a call made while none is out runs
// at once, alone, on its caller's context, as it did before calls were
// combined. Calls made while one is out wait; when it is back, its caller
// hands the waiting calls, up to maxItems items and maxBytes bytes (at
// least one call), to the first of them, which runs them as one and hands
// on in turn. So a caller waits for the calls ahead of it (one, unless
// more than a batch waits) and its own, and never runs calls after its
// own.
//
// A waiting caller whose context ends leaves the queue at once, or is
// answered with its context's error at the next hand-off if that comes
// first. One whose call is already in a batch, as its leader or not,
// waits for the batch, which runs until every one of its callers'
// contexts has ended: it holds all their entries.
type combiner[Q, A any] struct {
	maxItems, maxBytes int
	// size is a request's items and bytes.
	size func(Q) (items, bytes int)
	// run sets every call's ans and err.
	run func(context.Context, []*joined[Q, A])

	mu      sync.Mutex
	busy    bool
	waiting []*joined[Q, A]
}

// joined is one call: its request, and once done is closed its answer.
type joined[Q, A any] struct {
	ctx  context.Context
	req  Q
	ans  A
	err  error
	done chan struct{}
	// lead is the batch this call is to run, when it was chosen to lead.
	lead []*joined[Q, A]
}

// errRunPanicked answers the calls of a batch whose run panicked.
var errRunPanicked = errors.New("schedule: a combined index call panicked")

// do runs req in the next call and returns its answer.
func (c *combiner[Q, A]) do(ctx context.Context, req Q) (A, error) {
	me := &joined[Q, A]{ctx: ctx, req: req, done: make(chan struct{})}
	c.mu.Lock()
	if !c.busy {
		c.busy = true
		me.lead = []*joined[Q, A]{me}
		c.mu.Unlock()
	} else {
		c.waiting = append(c.waiting, me)
		c.mu.Unlock()
		select {
		case <-me.done:
		case <-ctx.Done():
			c.mu.Lock()
			if i := slices.Index(c.waiting, me); i >= 0 {
				c.waiting = slices.Delete(c.waiting, i, i+1)
				c.mu.Unlock()
				var zero A
				return zero, ctx.Err()
			}
			c.mu.Unlock()
			<-me.done // chosen already: to lead, or in a batch
		}
	}
	if me.lead != nil {
		c.lead(me)
	}
	return me.ans, me.err
}

// lead runs me's batch, hands on, and answers the batch's other calls.
func (c *combiner[Q, A]) lead(me *joined[Q, A]) {
	batch := me.lead
	ran := false
	defer func() {
		if !ran { // run panicked: no call may wait for ever
			for _, j := range batch {
				j.err = errRunPanicked
			}
		}
		c.handOn()
		for _, j := range batch {
			if j != me {
				close(j.done)
			}
		}
	}()
	ctx, stop := batchContext(batch)
	defer stop()
	c.run(ctx, batch)
	ran = true
}

// batchContext is the context a batch runs on: its one call's own, or one
// that ends when every call's context has ended.
func batchContext[Q, A any](batch []*joined[Q, A]) (context.Context, func()) {
	if len(batch) == 1 {
		return batch[0].ctx, func() {}
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(batch[0].ctx))
	var left atomic.Int64
	left.Store(int64(len(batch)))
	stops := make([]func() bool, len(batch))
	for i, j := range batch {
		stops[i] = context.AfterFunc(j.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, s := range stops {
			s()
		}
		cancel()
	}
}

// handOn gives the waiting calls, up to a batch, to the first of them, or
// marks the combiner idle.
func (c *combiner[Q, A]) handOn() {
	c.mu.Lock()
	defer c.mu.Unlock()
	// A waiter whose context has ended, and whose goroutine has not yet
	// run to leave, is answered now rather than held in a batch (the
	// second outside review).
	c.waiting = slices.DeleteFunc(c.waiting, func(j *joined[Q, A]) bool {
		if err := j.ctx.Err(); err != nil {
			j.err = err
			close(j.done)
			return true
		}
		return false
	})
	if len(c.waiting) == 0 {
		c.busy = false
		return
	}
	n, items, bytes := 0, 0, 0
	for ; n < len(c.waiting); n++ {
		i, b := c.size(c.waiting[n].req)
		if n > 0 && (items+i > c.maxItems || bytes+b > c.maxBytes) {
			break
		}
		items, bytes = items+i, bytes+b
	}
	next := slices.Clone(c.waiting[:n])
	c.waiting = slices.Delete(c.waiting, 0, n)
	next[0].lead = next
	close(next[0].done)
}
