// Command tracegc reads an execution trace that herald bench
// --window-traces wrote, and says how the garbage collector's phases line
// up with the latency scenario's slow notifications: how long and how
// often the process was marking, how long its goroutines waited to run
// inside a mark phase and outside one, and how many of the notifications
// slower than the target (the trace's bench.SlowLogCategory logs) were in
// flight during a mark phase, against the share of the same lengths of
// time, placed anywhere in the window, that would meet one.
//
//	herald bench --scenario latency --window-traces DIR
//	go run ./internal/tools/tracegc DIR/latency-herald.trace
//
// A trace of a running pod (HERALD_PPROF=on, /debug/pprof/trace?seconds=5;
// docs/operations.md) reads the same way, without slow notifications.
//
// It found the bench's own bookkeeping in herald's mark phases (BENCHMARKS.md,
// issue 14's twenty-fifth pass). Nothing is asserted; it prints a report.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/exp/trace"

	"github.com/gymhq/herald/bench"
)

func main() {
	if len(os.Args) != 2 || strings.HasPrefix(os.Args[1], "-") {
		fmt.Fprintln(os.Stderr, "usage: tracegc FILE.trace (herald bench --window-traces DIR, or a pod's /debug/pprof/trace)")
		os.Exit(2)
	}
	path := os.Args[1]
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		fmt.Fprintf(os.Stderr, "tracegc: %s is a directory; name one of its .trace files\n", path)
		os.Exit(2)
	}
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tracegc:", err)
		os.Exit(1)
	}
	defer f.Close()
	r, err := analyze(f)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tracegc: %s: %v\n", path, err)
		os.Exit(1)
	}
	r.print(os.Stdout)
}

// span is a stretch of the trace's time.
type span struct{ from, to trace.Time }

func (s span) len() time.Duration { return time.Duration(s.to - s.from) }

// slow is one notification slower than the target: its produce → receipt.
type slow struct {
	span
	what string // event id, channel, notification id
}

// report is what analyze found.
type report struct {
	window      span
	marks, stws []span // in order
	assist      time.Duration
	waitIn      []time.Duration // goroutines' runnable → running, inside a mark phase
	waitOut     []time.Duration // and outside
	slows       []slow
	badSlowLogs int
	// cut is why the trace ended before its end (a file cut short): the
	// report covers what was read.
	cut error
}

func analyze(in io.Reader) (*report, error) {
	rd, err := trace.NewReader(in)
	if err != nil {
		return nil, err
	}
	r := &report{}
	var markFrom, stwFrom trace.Time
	// A goroutine's mark assist counts only while it runs: the range
	// stays open while the goroutine is blocked or parked (an outside
	// tester found "assists" of 21 s in a window of 0.9 s).
	assisting := map[trace.GoID]bool{}
	runningFrom := map[trace.GoID]trace.Time{}
	runnable := map[trace.GoID]trace.Time{}
	type wait struct {
		at trace.Time
		d  time.Duration
	}
	var waits []wait
	for {
		ev, err := rd.ReadEvent()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if r.window.from == 0 {
				return nil, err
			}
			r.cut = err
			break
		}
		t := ev.Time()
		if r.window.from == 0 {
			r.window.from = t
		}
		r.window.to = t
		switch ev.Kind() {
		case trace.EventRangeBegin, trace.EventRangeActive:
			switch name := ev.Range().Name; {
			case name == "GC concurrent mark phase":
				markFrom = t
			case strings.HasPrefix(name, "stop-the-world"):
				stwFrom = t
			case name == "GC mark assist":
				g := ev.Goroutine()
				assisting[g] = true
				if _, ok := runningFrom[g]; !ok || ev.Kind() == trace.EventRangeBegin {
					runningFrom[g] = t // it runs: it is the one starting to assist
				}
			}
		case trace.EventRangeEnd:
			switch name := ev.Range().Name; {
			case name == "GC concurrent mark phase":
				if markFrom == 0 {
					continue // an end whose beginning the trace does not have
				}
				r.marks = append(r.marks, span{markFrom, t})
				markFrom = 0
			case strings.HasPrefix(name, "stop-the-world") && stwFrom != 0:
				r.stws = append(r.stws, span{stwFrom, t})
				stwFrom = 0
			case name == "GC mark assist":
				g := ev.Goroutine()
				if from, ok := runningFrom[g]; ok && assisting[g] {
					r.assist += time.Duration(t - from)
					runningFrom[g] = t
				}
				delete(assisting, g)
			}
		case trace.EventStateTransition:
			st := ev.StateTransition()
			if st.Resource.Kind != trace.ResourceGoroutine {
				continue
			}
			g := st.Resource.Goroutine()
			from, to := st.Goroutine()
			switch {
			case from == trace.GoRunning && to != trace.GoRunning:
				if at, ok := runningFrom[g]; ok && assisting[g] {
					r.assist += time.Duration(t - at)
				}
				delete(runningFrom, g)
			case to == trace.GoRunning && from != trace.GoRunning:
				runningFrom[g] = t
			}
			switch {
			case to == trace.GoRunnable:
				runnable[g] = t
			case from == trace.GoRunnable && to == trace.GoRunning:
				if at, ok := runnable[g]; ok {
					waits = append(waits, wait{at, time.Duration(t - at)})
					delete(runnable, g)
				}
			}
		case trace.EventLog:
			l := ev.Log()
			if l.Category != bench.SlowLogCategory {
				continue
			}
			us, what, _ := strings.Cut(l.Message, " ")
			n, err := strconv.ParseInt(us, 10, 64)
			if err != nil || n <= 0 {
				r.badSlowLogs++
				continue
			}
			r.slows = append(r.slows, slow{span{t - trace.Time(n*int64(time.Microsecond)), t}, what})
		}
	}
	if markFrom != 0 { // the window ended while marking
		r.marks = append(r.marks, span{markFrom, r.window.to})
	}
	for _, w := range waits {
		if r.inMark(w.at) || r.inMark(w.at+trace.Time(w.d)) {
			r.waitIn = append(r.waitIn, w.d)
		} else {
			r.waitOut = append(r.waitOut, w.d)
		}
	}
	slices.Sort(r.waitIn)
	slices.Sort(r.waitOut)
	return r, nil
}

// inMark reports whether t falls in a mark phase.
func (r *report) inMark(t trace.Time) bool {
	i, _ := slices.BinarySearchFunc(r.marks, t, func(s span, t trace.Time) int {
		if s.to < t {
			return -1
		}
		return 1
	})
	return i < len(r.marks) && r.marks[i].from <= t
}

// marked is how much of s the process spent in mark phases.
func (r *report) marked(s span) time.Duration {
	var d time.Duration
	for _, m := range r.marks {
		if lo, hi := max(s.from, m.from), min(s.to, m.to); hi > lo {
			d += time.Duration(hi - lo)
		}
	}
	return d
}

// overlap is the share of ss that were in flight during a mark phase, and
// the mean share of their time spent in one.
func (r *report) overlap(ss []span) (inFlight, mean float64) {
	if len(ss) == 0 {
		return 0, 0
	}
	for _, s := range ss {
		if m := r.marked(s); m > 0 {
			inFlight++
			mean += float64(m) / float64(max(1, s.len()))
		}
	}
	return inFlight / float64(len(ss)), mean / float64(len(ss))
}

// chance is what overlap would give for spans of the slow ones' lengths
// placed anywhere in the window at random, exactly rather than by drawing
// (a draw per slow notification is noise when there are few): the share
// of placements that meet a mark phase, and the share of their time spent
// in one, which is the marked share of the window but for its edges.
func (r *report) chance() (inFlight, mean float64) {
	if len(r.slows) == 0 {
		return 0, 0
	}
	marked, _ := total(r.marks)
	n := 0
	for _, s := range r.slows {
		l := s.len()
		room := r.window.len() - l
		if room <= 0 {
			continue
		}
		n++
		// Placements [from, from+l] meeting mark m start in
		// [m.from-l, m.to]; their union, within [window.from, window.to-l].
		lo, hi := r.window.from, r.window.to-trace.Time(l)
		var met time.Duration
		var cur span
		for i, m := range r.marks {
			x := span{max(lo, m.from-trace.Time(l)), min(hi, m.to)}
			if x.to <= x.from {
				continue
			}
			if i == 0 || x.from > cur.to {
				met += cur.len()
				cur = x
				continue
			}
			cur.to = max(cur.to, x.to)
		}
		met += cur.len()
		inFlight += float64(met) / float64(room)
		mean += min(1, float64(marked)/float64(room))
	}
	if n == 0 {
		return 0, 0
	}
	return inFlight / float64(n), mean / float64(n)
}

func total(ss []span) (sum, longest time.Duration) {
	for _, s := range ss {
		sum += s.len()
		longest = max(longest, s.len())
	}
	return sum, longest
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[int(float64(len(d)-1)*p)]
}

func (r *report) print(w io.Writer) {
	win := r.window.len()
	ms, ml := total(r.marks)
	ss, sl := total(r.stws)
	fmt.Fprintf(w, "window: %v\n", short(win))
	if r.cut != nil {
		fmt.Fprintf(w, "the trace ends early (a file cut short?): %v; what follows covers what was read\n", r.cut)
	}
	mean := time.Duration(0)
	if len(r.marks) > 0 {
		mean = ms / time.Duration(len(r.marks))
	}
	fmt.Fprintf(w, "mark phases: %d, %v in all (%.1f%% of the window), %v on average, the longest %v; goroutines ran mark assists for %v\n",
		len(r.marks), short(ms), 100*float64(ms)/float64(max(1, win)), short(mean), short(ml), short(r.assist))
	fmt.Fprintf(w, "stop-the-world pauses: %d, %v in all, the longest %v\n", len(r.stws), short(ss), short(sl))
	for _, x := range []struct {
		name string
		d    []time.Duration
	}{{"inside a mark phase", r.waitIn}, {"outside", r.waitOut}} {
		fmt.Fprintf(w, "goroutines' waits to run, %s: %d, p50 %v, p99 %v, p99.9 %v, longest %v\n", x.name, len(x.d),
			short(pct(x.d, .5)), short(pct(x.d, .99)), short(pct(x.d, .999)), short(pct(x.d, 1)))
	}
	if len(r.slows) == 0 {
		fmt.Fprintf(w, "slow notifications: none logged (category %s: the latency scenario's window, with --window-traces)\n", bench.SlowLogCategory)
		return
	}
	ss2 := make([]span, len(r.slows))
	for i, s := range r.slows {
		ss2[i] = s.span
	}
	a, m := r.overlap(ss2)
	ca, cm := r.chance()
	fmt.Fprintf(w, "slow notifications: %d; in flight during a mark phase: %.0f%% (the same lengths anywhere in the window: %.0f%%); share of their time in one: %.0f%% (anywhere: %.0f%%)\n",
		len(r.slows), 100*a, 100*ca, 100*m, 100*cm)
	if r.badSlowLogs > 0 {
		fmt.Fprintf(w, "slow-notification logs not understood: %d\n", r.badSlowLogs)
	}
	worst := slices.Clone(r.slows)
	slices.SortFunc(worst, func(a, b slow) int { return int(b.len() - a.len()) })
	fmt.Fprintln(w, "slowest (produced at, from the window's start; latency; marking meanwhile; event channel notification):")
	for _, s := range worst[:min(10, len(worst))] {
		fmt.Fprintf(w, "  %8.3fs  %-9v  %-9v  %s\n", float64(s.from-r.window.from)/1e9, short(s.len()), short(r.marked(s.span)), s.what)
	}
}

// short rounds d to three or four significant digits.
func short(d time.Duration) time.Duration {
	for unit := time.Duration(1); unit < time.Minute; unit *= 10 {
		if d < 1000*unit {
			return d.Round(unit)
		}
	}
	return d.Round(time.Second)
}
