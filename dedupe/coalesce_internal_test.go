package dedupe

import (
	"context"
	"testing"
)

// fakeExec records the batches it is given and blocks each one until the
// test lets it go, standing in for a pipeline on the wire.
type fakeExec struct {
	batches chan []string
	release chan struct{}
}

func newFakeExec() *fakeExec {
	return &fakeExec{batches: make(chan []string, 16), release: make(chan struct{})}
}

func (f *fakeExec) exec(batch []*call) {
	keys := make([]string, len(batch))
	for i, c := range batch {
		keys[i] = c.key
		c.val = "ok:" + c.key
	}
	f.batches <- keys
	<-f.release
}

func queue(t *testing.T, q *coalescer, ctx context.Context, key string) *call {
	t.Helper()
	c := &call{ctx: ctx, key: key, done: make(chan struct{})}
	if !q.enqueue(c) {
		t.Fatalf("enqueue(%s) refused", key)
	}
	return c
}

func wantBatch(t *testing.T, f *fakeExec, want ...string) {
	t.Helper()
	got := <-f.batches
	if len(got) != len(want) {
		t.Fatalf("batch = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("batch = %v, want %v", got, want)
		}
	}
}

// TestCoalescer drives the batching deterministically: the first call goes
// out alone and at once; calls queued while it is on the wire share the
// next batches, at most max each, in order; a caller that gave up while
// queued is not sent; Close answers everything already accepted.
func TestCoalescer(t *testing.T) {
	f := newFakeExec()
	q := newCoalescer(3, f.exec)
	bg := context.Background()

	first := queue(t, q, bg, "a")
	wantBatch(t, f, "a") // alone, without waiting for company

	gone, cancel := context.WithCancel(bg)
	var later []*call
	later = append(later, queue(t, q, bg, "b"))
	abandoned := queue(t, q, gone, "x")
	cancel()
	for _, k := range []string{"c", "d", "e", "f"} {
		later = append(later, queue(t, q, bg, k))
	}

	f.release <- struct{}{} // "a" answered
	<-first.done
	if first.val != "ok:a" || first.err != nil {
		t.Fatalf("first = %v, %v", first.val, first.err)
	}

	// Six queued, one abandoned, max 3: [b x c] minus x, then [d e f].
	wantBatch(t, f, "b", "c")
	<-abandoned.done
	if abandoned.err != context.Canceled || abandoned.val != nil {
		t.Fatalf("abandoned call: val %v, err %v; want not sent, context.Canceled", abandoned.val, abandoned.err)
	}
	f.release <- struct{}{}
	wantBatch(t, f, "d", "e", "f")

	// Close while a batch is on the wire: accepted calls are still answered.
	closing := queue(t, q, bg, "g")
	closed := make(chan struct{})
	go func() { q.close(); close(closed) }()
	f.release <- struct{}{}
	wantBatch(t, f, "g")
	f.release <- struct{}{}
	<-closed
	for _, c := range append(later, closing) {
		<-c.done
		if c.val != "ok:"+c.key {
			t.Errorf("call %s = %v, want ok:%s", c.key, c.val, c.key)
		}
	}
	if q.enqueue(&call{ctx: bg, key: "h", done: make(chan struct{})}) {
		t.Fatal("enqueue after close accepted")
	}
	q.close() // idempotent
}
