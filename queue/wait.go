package queue

import "context"

// WaitTracker is told when a handler waits on purpose: for a retry's
// not-before time, for another worker's claim on the same notification, for
// an unavailable dependency to come back. Liveness uses it to tell a
// handler that is waiting by design from one that is stuck. Implementations
// must be safe for concurrent use.
type WaitTracker interface {
	WaitBegin()
	WaitEnd()
}

type waitKey struct{}

// WithWaitTracker returns a context whose handler waits are reported to t.
func WithWaitTracker(ctx context.Context, t WaitTracker) context.Context {
	return context.WithValue(ctx, waitKey{}, t)
}

// Waiting reports that the handler running with ctx starts a deliberate
// wait; call the returned func when the wait ends. Without a tracker in ctx
// it does nothing.
func Waiting(ctx context.Context) (done func()) {
	t := Tracker(ctx)
	if t == nil {
		return func() {}
	}
	t.WaitBegin()
	return t.WaitEnd
}

// Tracker returns the wait tracker of ctx, nil when it has none: for a
// handler wrapper that must hear of waits too and pass them on.
func Tracker(ctx context.Context) WaitTracker {
	t, _ := ctx.Value(waitKey{}).(WaitTracker)
	return t
}
