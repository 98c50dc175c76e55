package sinks

import (
	"math"
	"sync/atomic"
)

// Ratio picks which of a stream of requests a sink fails, for "a provider
// answering 10% of requests with transient errors": over any run of
// requests the failed share is p, spread evenly (with p = 0.1, every tenth
// request), so tests are deterministic and benchmarks comparable. The zero
// value fails nothing. Safe for concurrent use.
type Ratio struct {
	p atomic.Uint64 // math.Float64bits of the share
	n atomic.Uint64 // requests seen
}

// Set sets the share of requests to fail, clamped to [0, 1], and restarts
// the count.
func (r *Ratio) Set(p float64) {
	p = math.Max(0, math.Min(1, p))
	r.p.Store(math.Float64bits(p))
	r.n.Store(0)
}

// Next counts one request and reports whether it is to fail.
func (r *Ratio) Next() bool {
	p := math.Float64frombits(r.p.Load())
	if p == 0 {
		return false
	}
	n := float64(r.n.Add(1))
	return math.Floor(n*p) > math.Floor((n-1)*p)
}
