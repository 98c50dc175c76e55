// Package coalesce turns concurrent requests into batches that share one
// round trip: the Redis idempotency store's scripts and the suppression
// list's lookups go this way (internal/rpipe), and the preference store's
// lookups. It knows nothing of what a request is.
package coalesce

import (
	"context"
	"sync"
)

// Call is one queued request and, once Done is closed, its reply.
type Call[Q any] struct {
	Ctx context.Context
	Req Q

	// Val and Err are set by the queue's exec function before Done closes
	// (Err alone when the caller's Ctx ended before the call was sent).
	Val  any
	Err  error
	done chan struct{}
}

// NewCall returns a call for req that gives up when ctx ends.
func NewCall[Q any](ctx context.Context, req Q) *Call[Q] {
	return &Call[Q]{Ctx: ctx, Req: req, done: make(chan struct{})}
}

// Done is closed once Val and Err hold the reply.
func (c *Call[Q]) Done() <-chan struct{} { return c.done }

// Queue turns concurrent calls into batches for one flusher goroutine.
//
// There is no timer: the flusher sends whatever is queued the moment it is
// free. With one caller that is immediately (one command, one round trip);
// under load, calls arriving while a batch is on the wire wait for the next
// batch and share its round trip. Batches never exceed max.
type Queue[Q any] struct {
	max  int
	exec func([]*Call[Q]) // sets Val and Err on every call it is given

	mu     sync.Mutex
	queue  []*Call[Q]
	closed bool

	wake    chan struct{} // capacity 1: "the queue is not empty"
	quit    chan struct{}
	stopped chan struct{}
}

// New starts a queue whose flusher hands batches of at most max calls to
// exec. Close stops it.
func New[Q any](max int, exec func([]*Call[Q])) *Queue[Q] {
	q := &Queue[Q]{
		max:     max,
		exec:    exec,
		wake:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go q.run()
	return q
}

// Enqueue queues c and wakes the flusher; it reports false when the queue
// is closed.
func (q *Queue[Q]) Enqueue(c *Call[Q]) bool {
	if !q.Add(c) {
		return false
	}
	q.Kick()
	return true
}

// Add queues c without waking the flusher: c goes with the next batch,
// which the next Enqueue or Kick starts if the flusher is idle (a busy one
// takes it when its current batch is done). Whoever waits for c must make
// sure one of them follows. It reports false when the queue is closed.
func (q *Queue[Q]) Add(c *Call[Q]) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	q.queue = append(q.queue, c)
	return true
}

// Kick wakes the flusher to send what is queued.
func (q *Queue[Q]) Kick() {
	select {
	case q.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// Close stops accepting calls, lets the flusher send what is queued (so no
// accepted call is left without an answer), and waits for it to exit.
func (q *Queue[Q]) Close() {
	q.mu.Lock()
	already := q.closed
	q.closed = true
	q.mu.Unlock()
	if !already {
		close(q.quit)
	}
	<-q.stopped
}

func (q *Queue[Q]) run() {
	defer close(q.stopped)
	var buf []*Call[Q]
	for {
		select {
		case <-q.wake:
		case <-q.quit:
			for buf = q.flush(buf); len(buf) > 0; buf = q.flush(buf) {
			}
			return
		}
		for buf = q.flush(buf); len(buf) > 0; buf = q.flush(buf) {
		}
	}
}

// flush sends one batch and returns it, emptied, for reuse as the next
// queue buffer; it returns an empty slice when nothing was queued.
func (q *Queue[Q]) flush(prev []*Call[Q]) []*Call[Q] {
	clear(prev)
	q.mu.Lock()
	batch := q.queue
	if len(batch) > q.max {
		q.queue = append(prev[:0], batch[q.max:]...)
		batch = batch[:q.max]
	} else {
		q.queue = prev[:0]
	}
	q.mu.Unlock()
	if len(batch) == 0 {
		return batch
	}

	// Callers that have given up are not sent: nobody would read the reply,
	// and (for the idempotency store) a Claim nobody knows about would hold
	// a lease until it expired.
	n := 0
	for _, c := range batch {
		if err := c.Ctx.Err(); err != nil {
			c.Err = err
			close(c.done)
			continue
		}
		batch[n] = c
		n++
	}
	live := batch[:n]
	if len(live) > 0 {
		q.exec(live)
		for _, c := range live {
			close(c.done)
		}
	}
	return batch
}
