package kafkarun

import (
	"bytes"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// handIdle hands j to an idle runner, as start does, but starts none: it
// reports false when no runner is idle.
func handIdle(r *runners, j job) bool {
	r.mu.Lock()
	n := len(r.idle)
	if n == 0 {
		r.mu.Unlock()
		return false
	}
	w := r.idle[n-1]
	r.idle = r.idle[:n-1]
	r.mu.Unlock()
	w.next <- j
	return true
}

func idleRunners(r *runners) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.idle)
}

// waitIdle waits until n runners are idle.
func waitIdle(t *testing.T, r *runners, n int) { t.Helper(); waitIdleFor(t, r, n, 5*time.Second) }

func waitIdleFor(t *testing.T, r *runners, n int, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); idleRunners(r) != n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d runners idle, want %d", idleRunners(r), n)
		}
	}
}

// goroutineID is the calling goroutine's number, from its stack's header.
func goroutineID() int {
	b := make([]byte, 64)
	b = b[:runtime.Stack(b, false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	id, _ := strconv.Atoi(string(b[:bytes.IndexByte(b, ' ')]))
	return id
}

// TestRunnersWaitForMoreWork: a runner that has run its function waits
// for the next one instead of exiting, so the next grouped write, fetch
// request or message runs on a goroutine whose stack has already grown.
func TestRunnersWaitForMoreWork(t *testing.T) {
	r := newRunners()
	first := make(chan struct{})
	r.run(func() { close(first) })
	<-first
	waitIdle(t, r, 1)
	second := make(chan struct{})
	if !handIdle(r, job{f: func() { close(second) }}) {
		t.Fatal("no runner waited for more work after running its function")
	}
	select {
	case <-second:
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting runner did not run the function it was handed")
	}
}

// TestRunnersHandWorkToTheLastIdle: of two idle runners, the next function
// runs on the one that became idle last, whose stack is the one still
// grown. (An unbuffered channel both received from handed it to the one
// idle longest.)
func TestRunnersHandWorkToTheLastIdle(t *testing.T) {
	r := newRunners()
	ids, idA, idB := make(chan int), make(chan int), make(chan int)
	releaseA, releaseB := make(chan struct{}), make(chan struct{})
	r.run(func() { idA <- goroutineID(); <-releaseA })
	r.run(func() { idB <- goroutineID(); <-releaseB })
	a, b := <-idA, <-idB
	if a == b {
		t.Fatal("two functions running at once shared a runner")
	}
	close(releaseA)
	waitIdle(t, r, 1)
	close(releaseB)
	waitIdle(t, r, 2)
	r.run(func() { ids <- goroutineID() })
	if got := <-ids; got != b {
		t.Fatalf("the next function ran on goroutine %d; want %d, the runner idle since last (the other, %d, has been idle longer)", got, b, a)
	}
}

// TestRunnersExitWhenIdle: a runner handed work more often than its check
// period keeps running, and one handed none for two periods has exited.
func TestRunnersExitWhenIdle(t *testing.T) {
	const every = 50 * time.Millisecond
	r := &runners{every: every}
	r.run(func() {})
	for end := time.Now().Add(10 * every); time.Now().Before(end); {
		waitIdle(t, r, 1) // had it exited, nothing would be idle
		if !handIdle(r, job{f: func() {}}) {
			t.Fatal("the runner exited while it was handed work every few milliseconds")
		}
		time.Sleep(every / 4)
	}
	// It exits one to two periods after its last job; six leave room for
	// a loaded machine running its timer late.
	time.Sleep(6 * every)
	if n := idleRunners(r); n != 0 {
		t.Fatalf("%d runners still waited for work six periods after their last job", n)
	}
}

// TestRunnersBeyondTheLoadExit: after a burst has started eight runners,
// work arriving one function at a time runs on one or two of them and the
// others exit. Handed to the runner idle longest, the work went round all
// eight, and none was ever idle long enough to exit.
func TestRunnersBeyondTheLoadExit(t *testing.T) {
	const every = 200 * time.Millisecond
	r := &runners{every: every}
	release := make(chan struct{})
	started := make(chan struct{}, 8)
	for range 8 {
		r.run(func() { started <- struct{}{}; <-release })
	}
	for range 8 {
		<-started
	}
	close(release)
	waitIdle(t, r, 8)
	// Each runner handed work in turn would get some every 8 × every/16,
	// half a period: often enough never to exit.
	used := map[int]bool{}
	end := time.Now().Add(5 * every)
	for half := end.Add(-5 * every / 2); time.Now().Before(end); time.Sleep(every / 16) {
		id := make(chan int)
		r.run(func() { id <- goroutineID() })
		if g := <-id; time.Now().After(half) {
			used[g] = true
		}
	}
	// One runner, or two on a loaded machine where the next function
	// came before the last runner was back on the idle stack.
	if len(used) > 2 {
		t.Errorf("functions handed out one at a time ran on %d runners over the last 2.5 periods; want 1 or 2", len(used))
	}
	for deadline := time.Now().Add(2 * every); idleRunners(r) > 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d runners idle after five periods of work for one; want those beyond it gone", idleRunners(r))
		}
	}
}

// TestRunnersTakenAsTheyTimeOutStillExitLater: a runner whose idle period
// ended just as it was handed work (its timer read, the idle stack's lock
// held by the one handing it out) runs that work and still exits once it
// is idle for long enough. It returned to waiting with a timer it had read
// and not reset, and never exited again.
func TestRunnersTakenAsTheyTimeOutStillExitLater(t *testing.T) {
	const every = 50 * time.Millisecond
	r := &runners{every: every}
	r.run(func() {})
	waitIdle(t, r, 1)
	r.mu.Lock()
	// Two ticks pass: the first finds work since the last, the second
	// finds none and waits for the lock to leave the idle stack.
	time.Sleep(5 * every)
	w := r.idle[0]
	r.idle = r.idle[:0]
	r.mu.Unlock()
	ran := make(chan struct{})
	w.next <- job{f: func() { close(ran) }}
	<-ran
	waitIdle(t, r, 1)
	time.Sleep(8 * every)
	if n := idleRunners(r); n != 0 {
		t.Fatalf("%d runners still idle eight periods after their last work", n)
	}
}
