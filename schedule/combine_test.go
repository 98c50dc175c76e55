package schedule

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// echo is a combiner whose calls answer their own request, recording each
// batch's requests; the first call blocks until hold is closed.
type echo struct {
	mu      sync.Mutex
	batches [][]int
	hold    chan struct{}
	c       *combiner[int, int]
}

func newEcho(max int) *echo {
	e := &echo{hold: make(chan struct{})}
	e.c = &combiner[int, int]{max: max, size: func(int) int { return 1 }, run: func(_ context.Context, calls []*joined[int, int]) {
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

func (e *echo) waiting() int {
	e.c.mu.Lock()
	defer e.c.mu.Unlock()
	return len(e.c.waiting)
}

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
	for e.waiting() == 0 && func() bool { e.mu.Lock(); defer e.mu.Unlock(); return len(e.batches) == 0 }() {
		time.Sleep(time.Millisecond)
	}
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
	c := &combiner[string, string]{max: 8, size: func(string) int { return 1 }, run: func(_ context.Context, calls []*joined[string, string]) {
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

// TestCombinerRunsOnAfterTheLeaderGivesUp: the calls a leader holds are
// others' as well; its context ending (its partition revoked) must not
// fail them.
func TestCombinerRunsOnAfterTheLeaderGivesUp(t *testing.T) {
	c := &combiner[int, int]{max: 8, size: func(int) int { return 1 }, run: func(ctx context.Context, calls []*joined[int, int]) {
		for _, j := range calls {
			j.err = ctx.Err()
		}
	}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.do(ctx, 1); err != nil {
		t.Errorf("a call whose context ended before it ran: %v", err)
	}
}
