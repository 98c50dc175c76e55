package dedupe

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// call is one queued script invocation and, once done is closed, its reply.
type call struct {
	ctx    context.Context
	script *redis.Script
	key    string
	args   []any

	val  any
	err  error
	done chan struct{}
}

// coalescer turns concurrent calls into batches for one flusher goroutine.
//
// There is no timer: the flusher sends whatever is queued the moment it is
// free. With one caller that is immediately (one command, one round trip);
// under load, calls arriving while a batch is on the wire wait for the next
// batch and share its round trip. Batches never exceed max.
type coalescer struct {
	max  int
	exec func([]*call) // sets val and err on every call it is given

	mu     sync.Mutex
	queue  []*call
	closed bool

	wake    chan struct{} // capacity 1: "the queue is not empty"
	quit    chan struct{}
	stopped chan struct{}
}

func newCoalescer(max int, exec func([]*call)) *coalescer {
	q := &coalescer{
		max:     max,
		exec:    exec,
		wake:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go q.run()
	return q
}

// enqueue queues c; it reports false when the coalescer is closed.
func (q *coalescer) enqueue(c *call) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.queue = append(q.queue, c)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
	return true
}

// close stops accepting calls, lets the flusher send what is queued (so no
// accepted call is left without an answer), and waits for it to exit.
func (q *coalescer) close() {
	q.mu.Lock()
	already := q.closed
	q.closed = true
	q.mu.Unlock()
	if !already {
		close(q.quit)
	}
	<-q.stopped
}

func (q *coalescer) run() {
	defer close(q.stopped)
	var buf []*call
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
func (q *coalescer) flush(prev []*call) []*call {
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
	// and a Claim nobody knows about would hold a lease until it expired.
	n := 0
	for _, c := range batch {
		if err := c.ctx.Err(); err != nil {
			c.err = err
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
