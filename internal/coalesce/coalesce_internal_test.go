package coalesce

import (
	"context"
	"testing"
	"time"
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

func (f *fakeExec) exec(batch []*Call[string]) {
	keys := make([]string, len(batch))
	for i, c := range batch {
		keys[i] = c.Req
		c.Val = "ok:" + c.Req
	}
	f.batches <- keys
	<-f.release
}

func queue(t *testing.T, q *Queue[string], ctx context.Context, key string) *Call[string] {
	t.Helper()
	c := NewCall(ctx, key)
	if !q.Enqueue(c) {
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
	q := New(3, f.exec)
	bg := context.Background()

	first := queue(t, q, bg, "a")
	wantBatch(t, f, "a") // alone, without waiting for company

	gone, cancel := context.WithCancel(bg)
	var later []*Call[string]
	later = append(later, queue(t, q, bg, "b"))
	abandoned := queue(t, q, gone, "x")
	cancel()
	for _, k := range []string{"c", "d", "e", "f"} {
		later = append(later, queue(t, q, bg, k))
	}

	f.release <- struct{}{} // "a" answered
	<-first.Done()
	if first.Val != "ok:a" || first.Err != nil {
		t.Fatalf("first = %v, %v", first.Val, first.Err)
	}

	// Six queued, one abandoned, max 3: [b x c] minus x, then [d e f].
	wantBatch(t, f, "b", "c")
	<-abandoned.Done()
	if abandoned.Err != context.Canceled || abandoned.Val != nil {
		t.Fatalf("abandoned call: val %v, err %v; want not sent, context.Canceled", abandoned.Val, abandoned.Err)
	}
	f.release <- struct{}{}
	wantBatch(t, f, "d", "e", "f")

	// Close while a batch is on the wire: accepted calls are still answered.
	closing := queue(t, q, bg, "g")
	closed := make(chan struct{})
	go func() { q.Close(); close(closed) }()
	f.release <- struct{}{}
	wantBatch(t, f, "g")
	f.release <- struct{}{}
	<-closed
	for _, c := range append(later, closing) {
		<-c.Done()
		if c.Val != "ok:"+c.Req {
			t.Errorf("call %s = %v, want ok:%s", c.Req, c.Val, c.Req)
		}
	}
	if q.Enqueue(NewCall(bg, "h")) {
		t.Fatal("enqueue after close accepted")
	}
	q.Close() // idempotent
}

// TestCoalescerAddWaitsForCompany: a call added without a wake-up waits for
// the next Enqueue and goes out in its batch; Kick sends one that nothing
// followed; a busy flusher takes added calls with what it sends next.
func TestCoalescerAddWaitsForCompany(t *testing.T) {
	f := newFakeExec()
	q := New(8, f.exec)
	defer q.Close()
	bg := context.Background()

	if !q.Add(NewCall(bg, "lookup")) {
		t.Fatal("add refused")
	}
	select {
	case b := <-f.batches:
		t.Fatalf("an added call went out alone: %v", b)
	case <-time.After(50 * time.Millisecond):
	}
	queue(t, q, bg, "claim")
	wantBatch(t, f, "lookup", "claim")
	f.release <- struct{}{}

	lone := NewCall(bg, "alone")
	q.Add(lone)
	q.Kick()
	wantBatch(t, f, "alone")
	f.release <- struct{}{}
	<-lone.Done()

	queue(t, q, bg, "busy")
	wantBatch(t, f, "busy")
	q.Add(NewCall(bg, "rides"))
	f.release <- struct{}{}
	wantBatch(t, f, "rides") // no wake-up needed: the flusher looks again after each batch
	f.release <- struct{}{}
}
