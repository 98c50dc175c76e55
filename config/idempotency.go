package config

// IdempotencyMode switches the idempotency keys on or off. Off exists only
// to measure what the keys are worth (the chaos test and benchmarks run
// the same workload both ways); production runs on.
type IdempotencyMode string

const (
	// IdempotencyOn claims a Redis key before every send (docs/contracts.md §3).
	IdempotencyOn IdempotencyMode = "on"
	// IdempotencyOff sends without claiming: every redelivery after a
	// crash or rebalance is delivered again.
	IdempotencyOff IdempotencyMode = "off"
)
