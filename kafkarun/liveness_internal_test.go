package kafkarun

import (
	"context"
	"testing"

	"github.com/gymhq/herald/queue"
)

// uncomparableCtx is a context that cannot be a map key.
type uncomparableCtx struct {
	context.Context
	tags []string
}

// TestTrackReusesContexts: every record of a partition (one handler
// context) reaches its handler with the same context carrying the group's
// wait tracker, made once and without an allocation per record after; a
// context that cannot be a map key still gets one.
func TestTrackReusesContexts(t *testing.T) {
	l := &Liveness{}
	var seen []context.Context
	waited := 0
	h := l.Track("g", []string{"t"}, func(ctx context.Context, _ *queue.Message) error {
		seen = append(seen, ctx)
		done := queue.Waiting(ctx)
		l.mu.Lock()
		waited += l.groups["g"].waiting
		l.mu.Unlock()
		done()
		return nil
	})
	partition := context.WithValue(context.Background(), struct{}{}, "partition 0")
	other := context.WithValue(context.Background(), struct{}{}, "partition 1")
	odd := uncomparableCtx{Context: context.Background(), tags: []string{"x"}}
	// Comparable to reflect, but its parent in an interface field is not.
	oddWithin := context.WithoutCancel(odd)
	m := &queue.Message{}
	for _, ctx := range []context.Context{partition, partition, other, partition, odd, oddWithin} {
		if err := h(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if waited != 6 {
		t.Errorf("%d of 6 handler calls reported their wait to the group, want all", waited)
	}
	if seen[0] != seen[1] || seen[1] != seen[3] {
		t.Error("records of one handler context reached the handler with different contexts")
	}
	if seen[0] == seen[2] {
		t.Error("two handler contexts share one tracked context")
	}
	quiet := l.Track("g2", []string{"t"}, func(context.Context, *queue.Message) error { return nil })
	if n := testing.AllocsPerRun(100, func() { _ = quiet(partition, m) }); n != 0 {
		t.Errorf("a record of a known handler context allocates %v times, want 0", n)
	}
}

// TestTrackedContextsBounded: the cache of tracked contexts starts again
// when it would hold more than maxTracked, so contexts of partitions long
// gone are not kept for ever.
func TestTrackedContextsBounded(t *testing.T) {
	var tc trackedContexts
	p := (&Liveness{}).group("g", nil)
	first := context.WithValue(context.Background(), struct{}{}, 0)
	kept := tc.of(first, p)
	for i := 1; i <= maxTracked; i++ {
		tc.of(context.WithValue(context.Background(), struct{}{}, i), p)
	}
	size := 0
	tc.m.Range(func(_, _ any) bool { size++; return true })
	if size > maxTracked {
		t.Errorf("%d contexts kept, want at most %d", size, maxTracked)
	}
	if _, ok := tc.m.Load(first); ok {
		t.Error("the first context is still kept after the cache filled")
	}
	if again := tc.of(first, p); again == kept {
		t.Error("a context dropped from the cache came back as the old tracked context")
	}
}
