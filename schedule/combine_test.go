package schedule

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gymhq/herald/internal/redistest"
)

// echo is a combiner whose calls answer their own request, recording each
// batch's requests; the first call blocks until hold is closed.
type echo struct {
	mu      sync.Mutex
	batches [][]int
	hold    chan struct{}
	c       *combiner[int, int]
}

func newEcho(max int) *echo { return newEchoSized(max, 1<<30, one[int]) }

// newEchoSized is newEcho with a byte bound and request sizes.
func newEchoSized(maxItems, maxBytes int, size func(int) (int, int)) *echo {
	e := &echo{hold: make(chan struct{})}
	e.c = &combiner[int, int]{maxItems: maxItems, maxBytes: maxBytes, size: size, run: func(_ context.Context, calls []*joined[int, int]) {
		e.mu.Lock()
		first := len(e.batches) == 0
		var reqs []int
		for _, c := range calls {
			reqs = append(reqs, c.req)
			c.ans = c.req * 10
		}
		e.batches = append(e.batches, reqs)
		e.mu.Unlock()
		if first {
			<-e.hold
		}
	}}
	return e
}

func (e *echo) waiting() int { return waiting(e.c) }

// started waits until the first call is in run.
func (e *echo) started() {
	for func() bool { e.mu.Lock(); defer e.mu.Unlock(); return len(e.batches) == 0 }() {
		time.Sleep(time.Millisecond)
	}
}

// one sizes every request as one item of one byte.
func one[Q any](Q) (int, int) { return 1, 1 }

// TestCombinerBatchesWhatWaits: a call made while none is out runs alone;
// the calls made while it is out run as one once it is back, in batches of
// at most max, and each gets its own answer.
func TestCombinerBatchesWhatWaits(t *testing.T) {
	e := newEcho(4)
	var wg sync.WaitGroup
	got := make([]int, 11)
	call := func(i int) {
		defer wg.Done()
		a, err := e.c.do(context.Background(), i)
		if err != nil {
			t.Error(err)
		}
		got[i] = a
	}
	wg.Add(1)
	go call(0)
	e.started()
	for i := 1; i <= 10; i++ {
		wg.Add(1)
		go call(i)
		for e.waiting() < i {
			time.Sleep(time.Millisecond)
		}
	}
	close(e.hold)
	wg.Wait()
	for i, a := range got {
		if a != i*10 {
			t.Errorf("call %d answered %d, want %d", i, a, i*10)
		}
	}
	var sizes []int
	for _, b := range e.batches {
		sizes = append(sizes, len(b))
	}
	if !slices.Equal(sizes, []int{1, 4, 4, 2}) {
		t.Errorf("batches %v, want sizes 1, 4, 4, 2 (%v)", e.batches, sizes)
	}
	if e.c.busy || len(e.c.waiting) != 0 {
		t.Errorf("left busy %v with %d waiting", e.c.busy, len(e.c.waiting))
	}
}

// TestCombinerUnderLoad: many callers at once, each gets its own answer
// (go test -race checks the hand-offs).
func TestCombinerUnderLoad(t *testing.T) {
	c := &combiner[string, string]{maxItems: 8, maxBytes: 1 << 30, size: one[string], run: func(_ context.Context, calls []*joined[string, string]) {
		for _, j := range calls {
			j.ans = "re:" + j.req
		}
		time.Sleep(50 * time.Microsecond)
	}}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				req := fmt.Sprintf("%d/%d", g, i)
				if a, _ := c.do(context.Background(), req); a != "re:"+req {
					t.Errorf("%s answered %q", req, a)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestCombinerBatchRunsUntilEveryCallerGivesUp: a batch of several calls
// runs on a context that ends only once every caller's has ended; a call
// alone runs on its caller's own, as before calls were combined.
func TestCombinerBatchRunsUntilEveryCallerGivesUp(t *testing.T) {
	hold := make(chan struct{})
	var first atomic.Bool
	errs := make(chan error, 8)
	c := &combiner[int, int]{maxItems: 8, maxBytes: 1 << 30, size: one[int], run: func(ctx context.Context, calls []*joined[int, int]) {
		if calls[0].req == 1 {
			first.Store(true)
			<-hold
		}
		if len(calls) > 1 {
			errs <- ctx.Err() // alive: some caller still waits
			for _, j := range calls {
				if j.req == 2 {
					<-j.ctx.Done() // caller 2 gives up mid-call
				}
			}
			errs <- ctx.Err() // caller 3 still waits
		}
		for _, j := range calls {
			j.err = ctx.Err()
		}
	}}
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.do(ended, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("a call alone on an ended context: %v, want its context's error", err)
	}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _, _ = c.do(context.Background(), 1) }()
	for !first.Load() {
		time.Sleep(time.Millisecond)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	res := make(chan error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); _, err := c.do(ctx2, 2); res <- err }()
	for waiting(c) < 1 {
		time.Sleep(time.Millisecond)
	}
	go func() { defer wg.Done(); _, err := c.do(context.Background(), 3); res <- err }()
	for waiting(c) < 2 {
		time.Sleep(time.Millisecond)
	}
	close(hold)
	if err := <-errs; err != nil {
		t.Errorf("batch context ended while its callers waited: %v", err)
	}
	cancel2()
	if err := <-errs; err != nil {
		t.Errorf("batch context ended when one of two callers gave up: %v", err)
	}
	wg.Wait()
	for range 2 {
		if err := <-res; err != nil {
			t.Errorf("a call of the batch: %v", err)
		}
	}
}

func waiting[Q, A any](c *combiner[Q, A]) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiting)
}

// TestCombinerWaiterLeavesWhenItsContextEnds: a call waiting behind one
// that is out returns when its context ends, without waiting for Redis
// (the outside review: with Redis down, callers with 20 ms contexts took
// 3.4 s), and the calls behind it still run.
func TestCombinerWaiterLeavesWhenItsContextEnds(t *testing.T) {
	e := newEcho(8)
	c := e.c
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _, _ = c.do(context.Background(), 1) }()
	e.started()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	wg.Add(1)
	go func() { defer wg.Done(); _, _ = c.do(context.Background(), 3) }()
	start := time.Now()
	_, err := c.do(ctx, 2)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("a waiting call whose context ended: %v after %v", err, time.Since(start))
	}
	close(e.hold)
	wg.Wait()
	if want := [][]int{{1}, {3}}; !slices.EqualFunc(e.batches, want, slices.Equal) {
		t.Errorf("ran %v, want %v (2 gave up)", e.batches, want)
	}
	if c.busy {
		t.Error("left busy")
	}
}

// TestCombinerByteBound: a batch stops at maxBytes as at maxItems, but a
// call bigger than the bound alone still runs.
func TestCombinerByteBound(t *testing.T) {
	e := newEchoSized(100, 10, func(n int) (int, int) { return 1, n })
	c := e.c
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _, _ = c.do(context.Background(), 1) }()
	e.started()
	for i, n := range []int{4, 4, 4, 30, 2} {
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = c.do(context.Background(), n) }()
		for e.waiting() < i+1 {
			time.Sleep(time.Millisecond)
		}
	}
	close(e.hold)
	wg.Wait()
	want := [][]int{{1}, {4, 4}, {4}, {30}, {2}}
	if !slices.EqualFunc(e.batches, want, slices.Equal) {
		t.Errorf("batches %v, want %v", e.batches, want)
	}
}

// TestCombinerSurvivesAPanic: a run that panics answers its batch with an
// error and hands on, so no later call waits for ever.
func TestCombinerSurvivesAPanic(t *testing.T) {
	c := &combiner[int, int]{maxItems: 8, maxBytes: 1 << 30, size: one[int], run: func(_ context.Context, calls []*joined[int, int]) {
		if calls[0].req == 1 {
			panic("boom")
		}
		for _, j := range calls {
			j.ans = j.req
		}
	}}
	func() {
		defer func() { _ = recover() }()
		_, _ = c.do(context.Background(), 1)
	}()
	if a, err := c.do(context.Background(), 2); a != 2 || err != nil {
		t.Errorf("after a panic: %d %v", a, err)
	}
}

// TestCombinerAnswersAnEndedWaiterAtHandOff: a waiter whose context ended
// just before the hand-off, its goroutine not yet run to leave, is answered
// then, not held in a batch with a caller that still waits (the second
// outside review: it was chosen to lead and held for as long as the other
// caller's call took).
func TestCombinerAnswersAnEndedWaiterAtHandOff(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1)) // the waiter is readied, not run, before handOn
	hold := make(chan struct{})
	ctxW, cancelW := context.WithCancel(context.Background())
	ctxX, cancelX := context.WithCancel(context.Background())
	defer cancelX()
	var started atomic.Bool
	c := &combiner[int, int]{maxItems: 8, maxBytes: 1 << 30, size: one[int]}
	c.run = func(ctx context.Context, calls []*joined[int, int]) {
		if calls[0].req == 1 {
			started.Store(true)
			<-hold
			cancelW()
			return
		}
		<-ctx.Done() // a Redis that never answers
		for _, j := range calls {
			j.err = ctx.Err()
		}
	}
	go func() { _, _ = c.do(context.Background(), 1) }()
	for !started.Load() {
		time.Sleep(time.Millisecond)
	}
	resW := make(chan error, 1)
	go func() { _, err := c.do(ctxW, 2); resW <- err }()
	for waiting(c) < 1 {
		time.Sleep(time.Millisecond)
	}
	go func() { _, _ = c.do(ctxX, 3) }()
	for waiting(c) < 2 {
		time.Sleep(time.Millisecond)
	}
	close(hold)
	select {
	case err := <-resW:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the ended waiter: %v, want its context's error", err)
		}
	case <-time.After(2 * time.Second):
		t.Error("a waiter whose context ended before the hand-off is still held 2 s later")
		cancelX()
		<-resW
	}
}

// TestRedisAddsSharingAnIDRunApart: two calls in one batch with entries of
// one id are each told only of their own: the script's reply names ids
// (the second outside review: the call whose entry was indexed was told it
// was turned away).
func TestRedisAddsSharingAnIDRunApart(t *testing.T) {
	srv := redistest.Start(t)
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	r := NewRedis(srv.Client(), RedisOptions{Prefix: "shared", Clock: func() time.Time { return t0 }})
	ctx := context.Background()
	if _, err := r.Cancel(ctx, []Cancellation{{Key: "gone", At: t0.Add(time.Hour)}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	mk := func(k, rec string) *joined[[]Entry, []string] {
		return &joined[[]Entry, []string]{ctx: ctx, req: []Entry{{ID: "x", Due: t0.Add(time.Minute), Keys: []string{k}, EventTime: t0, Record: []byte(rec)}}}
	}
	a, b := mk("gone", "a"), mk("kept", "b")
	r.runAdds(ctx, []*joined[[]Entry, []string]{a, b})
	if !slices.Equal(a.ans, []string{"x"}) || a.err != nil {
		t.Errorf("a's x, covered by a tombstone: told %v %v, want [x]", a.ans, a.err)
	}
	if b.ans != nil || b.err != nil {
		t.Errorf("b's x was indexed (record %q) but b is told %v %v", srv.Client().HGet(ctx, "shared:{s}:rec", "x").Val(), b.ans, b.err)
	}
}
