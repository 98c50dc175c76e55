package main

import (
	"bytes"
	"context"
	"math"
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
	if limit := r.window.len() * time.Duration(runtime.GOMAXPROCS(0)); r.assist > limit {
		t.Errorf("mark assists of %v in a window of %v on %d processors", r.assist, r.window.len(), runtime.GOMAXPROCS(0))
	}

	var out strings.Builder
	r.print(&out)
	for _, want := range []string{"mark phases: ", "slow notifications: 2; in flight during a mark phase: 50%", "evt-gc email n-1", "not understood: 1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report has no %q:\n%s", want, out.String())
		}
	}
}

// TestChanceIsExact: spans of 10 in a window of 100 with mark phases at
// 10–20 and 50–60 meet one when they start in 0–20 or 40–60, 40 of the 90
// places they can start; their time in one is the marked 20 of the 90.
func TestChanceIsExact(t *testing.T) {
	r := &report{window: span{0, 100}, marks: []span{{10, 20}, {50, 60}}, slows: []slow{{span: span{30, 40}}, {span: span{85, 95}}}}
	inFlight, mean := r.chance()
	if math.Abs(inFlight-40.0/90) > 1e-9 || math.Abs(mean-20.0/90) > 1e-9 {
		t.Errorf("chance = %v, %v; want %v, %v", inFlight, mean, 40.0/90, 20.0/90)
	}
	if got, _ := r.overlap([]span{r.slows[0].span, r.slows[1].span}); got != 0 {
		t.Errorf("spans 30–40 and 85–95 overlap marks %v of the time", got)
	}
}

// TestAnalyzeReadsATraceCutShort: a trace cut short (an interrupted copy
// of a pod's) is read up to the last whole part the runtime wrote (one a
// second), and the report says it ends early; before, the reader's error
// was all it printed.
func TestAnalyzeReadsATraceCutShort(t *testing.T) {
	var buf bytes.Buffer
	if err := trace.Start(&buf); err != nil {
		t.Skipf("an execution trace is already being written: %v", err)
	}
	for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end); {
		runtime.GC()
		time.Sleep(50 * time.Millisecond)
	}
	trace.Stop()
	r, err := analyze(bytes.NewReader(buf.Bytes()[:buf.Len()*3/4]))
	if err != nil {
		t.Fatalf("a trace cut at three quarters: %v", err)
	}
	var out strings.Builder
	r.print(&out)
	if r.cut == nil || r.window.len() < time.Second || !strings.Contains(out.String(), "the trace ends early") {
		t.Errorf("a trace of 2.5 s cut at three quarters read as %v, cut %v:\n%s", r.window.len(), r.cut, out.String())
	}
}
