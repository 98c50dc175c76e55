package main

import (
	"bytes"
	"context"
	"runtime"
	"runtime/trace"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gymhq/herald/bench"
)

// TestAnalyzeLinesSlowNotificationsUpWithMarkPhases: a trace of this
// process with one notification logged slow across a forced collection and
// one across a stretch without any, read back: the collection's mark phase
// is found, the first notification is in flight during it and the second
// is not, and a log that is not understood is counted, not taken.
func TestAnalyzeLinesSlowNotificationsUpWithMarkPhases(t *testing.T) {
	var buf bytes.Buffer
	if err := trace.Start(&buf); err != nil {
		t.Skipf("an execution trace is already being written: %v", err)
	}
	logSlow := func(since time.Time, what string) {
		us := max(1, time.Since(since).Microseconds())
		trace.Log(context.Background(), bench.SlowLogCategory, strconv.FormatInt(us, 10)+" "+what)
	}
	start := time.Now()
	runtime.GC()
	logSlow(start, "evt-gc email n-1")
	time.Sleep(20 * time.Millisecond) // no allocation to speak of, no collection
	start = time.Now()
	time.Sleep(5 * time.Millisecond)
	logSlow(start, "evt-quiet sms n-2")
	trace.Log(context.Background(), bench.SlowLogCategory, "soon evt-bad push n-3")
	trace.Stop()

	r, err := analyze(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.marks) == 0 {
		t.Fatal("no mark phase found around runtime.GC")
	}
	if len(r.slows) != 2 || r.badSlowLogs != 1 {
		t.Fatalf("%d slow notifications and %d logs not understood; want 2 and 1", len(r.slows), r.badSlowLogs)
	}
	if m := r.marked(r.slows[0].span); m <= 0 {
		t.Errorf("the notification in flight across runtime.GC spent %v in a mark phase", m)
	}
	if m := r.marked(r.slows[1].span); m != 0 {
		t.Errorf("the notification in flight across a sleep spent %v in a mark phase", m)
	}
	if inFlight, _ := r.overlap([]span{r.slows[0].span, r.slows[1].span}); inFlight != 0.5 {
		t.Errorf("share in flight during a mark phase = %v, want 0.5", inFlight)
	}
	var out strings.Builder
	r.print(&out)
	for _, want := range []string{"mark phases: ", "slow notifications: 2; in flight during a mark phase: 50%", "evt-gc email n-1", "not understood: 1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report has no %q:\n%s", want, out.String())
		}
	}
}
