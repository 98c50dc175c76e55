package kafkarun

import (
	"context"
)

// Gate pauses a consumer's work. Before each attempt at a record the runtime
// calls Wait; while it blocks, no record of the consumer starts (and none is
// claimed or tried), and records already fetched stay uncommitted. A channel
// whose provider's circuit breaker is open uses this to stop consuming
// instead of burning through retries.
//
// Wait must return nil when work may proceed, or ctx's error when ctx ends
// (the partition is stopping). It is called concurrently.
type Gate interface {
	Wait(ctx context.Context) error
}

// passingGate is implemented by gates that can say cheaply that Wait would
// return at once; the runtime then skips setting up a wait on the hot path.
type passingGate interface {
	Passing() bool
}

// waitGate blocks on the consumer's gate, if any, and reports whether the
// record may proceed; false means the partition is stopping and the record
// is abandoned uncommitted.
func (p *partition) waitGate() bool {
	g := p.c.cfg.Gate
	if g == nil {
		return true
	}
	if o, ok := g.(passingGate); ok && o.Passing() {
		return true
	}
	ctx, cancel := context.WithCancel(p.workCtx)
	defer cancel()
	go func() {
		select {
		case <-p.stopping:
			cancel()
		case <-ctx.Done():
		}
	}()
	return g.Wait(ctx) == nil
}
