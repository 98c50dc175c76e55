package kafkarun

import (
	"testing"
	"time"
)

// TestRunnersWaitForMoreWork: a runner that has run its function waits
// for the next one instead of exiting, so the next grouped write, fetch
// request or message runs on a goroutine whose stack has already grown.
func TestRunnersWaitForMoreWork(t *testing.T) {
	r := newRunners()
	first := make(chan struct{})
	r.run(func() { close(first) })
	<-first
	second := make(chan struct{})
	f := func() { close(second) }
	deadline := time.Now().Add(5 * time.Second)
	for sent := false; !sent; {
		select {
		case r.idle <- job{f: f}: // only a waiting runner receives
			sent = true
		default:
			if time.Now().After(deadline) {
				t.Fatal("no runner waited for more work after running its function")
			}
			time.Sleep(time.Millisecond)
		}
	}
	select {
	case <-second:
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting runner did not run the function it was handed")
	}
}

// TestRunnersExitWhenIdle: a runner handed work more often than its check
// period keeps running, and one handed none for two periods has exited.
func TestRunnersExitWhenIdle(t *testing.T) {
	const every = 50 * time.Millisecond
	r := &runners{idle: make(chan job), every: every}
	r.run(func() {})
	for end := time.Now().Add(10 * every); time.Now().Before(end); {
		select {
		case r.idle <- job{f: func() {}}:
		case <-time.After(time.Second):
			t.Fatal("the runner exited while it was handed work every few milliseconds")
		}
		time.Sleep(every / 4)
	}
	// It exits one to two periods after its last job; six leave room for
	// a loaded machine running its timer late. (Polling would hand it
	// work, which keeps it.)
	time.Sleep(6 * every)
	select {
	case r.idle <- job{f: func() {}}:
		t.Fatal("a runner still waited for work six periods after its last job")
	default:
	}
}
