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
		case r.idle <- f: // only a waiting runner receives
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
