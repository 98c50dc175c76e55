package sinks

import "sync"

// Faults is a provider fake's failure schedule: answers queued for the next
// requests come first, then the share of requests a Ratio picks gets the
// ratio's answer. F is the fake's own description of a failure. The zero
// value fails nothing; it is safe for concurrent use.
type Faults[F any] struct {
	mu     sync.Mutex
	next   []F
	ratio  Ratio
	ratioF F
}

// Queue makes the next n requests fail with f, after those already queued.
func (q *Faults[F]) Queue(n int, f F) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for range n {
		q.next = append(q.next, f)
	}
}

// SetRatio makes the share p of requests fail with f once the queue is
// empty; p = 0 turns it off.
func (q *Faults[F]) SetRatio(p float64, f F) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.ratioF = f
	q.ratio.Set(p)
}

// Take counts one request and returns the failure it is to answer with, if
// any.
func (q *Faults[F]) Take() (F, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.next) > 0 {
		f := q.next[0]
		q.next = q.next[1:]
		return f, true
	}
	if q.ratio.Next() {
		return q.ratioF, true
	}
	var zero F
	return zero, false
}
