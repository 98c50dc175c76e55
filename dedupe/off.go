package dedupe

import (
	"context"
	"time"
)

// Off is a Store that remembers nothing: every Claim is acquired, every
// mark is dropped. It exists to measure what the keys are worth
// (HERALD_IDEMPOTENCY=off in the chaos test and benchmarks): with it, every
// redelivery is sent again. Never use it in production.
type Off struct{}

var _ Store = Off{}

// Claim always acquires.
func (Off) Claim(_ context.Context, id, owner string, lease time.Duration) (Claim, error) {
	if err := checkOwner("claim", id, owner); err != nil {
		return Claim{}, err
	}
	if err := checkLease(id, lease); err != nil {
		return Claim{}, err
	}
	return Claim{Acquired: true, State: StateInFlight, Owner: owner, LeaseLeft: lease}, nil
}

// MarkSent does nothing.
func (Off) MarkSent(_ context.Context, id, owner, _ string) error {
	return checkOwner("mark sent", id, owner)
}

// MarkFailed does nothing.
func (Off) MarkFailed(_ context.Context, id, owner, _ string) error {
	return checkOwner("mark failed", id, owner)
}

// Release does nothing.
func (Off) Release(_ context.Context, id, owner string) error {
	return checkOwner("release", id, owner)
}

// Get always finds no key.
func (Off) Get(_ context.Context, id string) (Claim, error) { return Claim{}, checkID("get", id) }

// Close does nothing.
func (Off) Close() error { return nil }
