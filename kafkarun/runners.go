package kafkarun

import (
	"slices"
	"sync"
	"time"

	"github.com/gymhq/herald/queue"
)

// runners runs functions on goroutines that outlive them: an idle one if
// any is waiting, else a new one, which waits for more work and exits
// after a whole runnerIdle period without any. A goroutine started per message, per grouped write or
// per fetch request grows its stack from the minimum every time; a runner
// keeps its grown stack for the next. (runtime.copystack was 3% of the
// pipeline's CPU with a goroutine per message; runtime.newstack was 1.8%
// of the latency scenario's process CPU in one profile, more than half of
// it in goroutines started per grouped write and per fetch request; issue
// 14.)
// A runner is started only when none is idle, so there are never more of
// them than functions that were running at once.
//
// Work goes to the runner that became idle last. An unbuffered channel
// that every idle runner received from handed it to the one idle longest
// instead: after a burst had started many runners, every one of them ran
// in turn, each with the stack the garbage collector had shrunk while it
// waited, which it grew again, and none was ever idle long enough to
// exit. (runtime.copystack was 2.2% of a pipeline window's CPU before this
// and the partition loop's wait for a handler, consumer.go's dispatch,
// and 0.4% after; issue 14's twenty-sixth pass.) Handed out last-in first-out, the few runners the
// load needs stay warm and the rest exit.
type runners struct {
	mu   sync.Mutex
	idle []*runner // the last to become idle last
	// every is how often a runner checks whether it ran anything since
	// it last checked, and exits if not (runnerIdle).
	every time.Duration
}

// runner is one runner's mailbox: start hands it a job only after taking
// it off the idle stack, so it never holds more than one.
type runner struct{ next chan job }

// runnerIdle is how often a runner checks for having been idle: it exits
// once it has run nothing for a whole period, after between one and two
// periods without work.
const runnerIdle = 5 * time.Second

func newRunners() *runners { return &runners{every: runnerIdle} }

// job is a function to run, or a record to handle: the consumer hands a
// runner its partition and message rather than a closure over them, one
// allocation per record fewer.
type job struct {
	f func()
	p *partition
	m *queue.Message
}

func (j job) do() {
	if j.f != nil {
		j.f()
	} else {
		j.p.run(j.m)
	}
}

// run runs f on a runner.
func (r *runners) run(f func()) { r.start(job{f: f}) }

// handle runs p.run(m) on a runner.
func (r *runners) handle(p *partition, m *queue.Message) { r.start(job{p: p, m: m}) }

func (r *runners) start(j job) {
	r.mu.Lock()
	if n := len(r.idle); n > 0 {
		w := r.idle[n-1]
		r.idle[n-1] = nil
		r.idle = r.idle[:n-1]
		r.mu.Unlock()
		w.next <- j // its mailbox is empty: taken off the stack, nobody else sends
		return
	}
	r.mu.Unlock()
	go r.loop(&runner{next: make(chan job, 1)}, j)
}

// loop runs j, then what it is handed, until a period of its timer passes
// without any. The timer is not reset per function: a Reset per record
// was 1% of the plumbing floor's CPU (issue 14).
func (r *runners) loop(w *runner, j job) {
	t := time.NewTimer(r.every)
	defer t.Stop()
	for {
		j.do()
		j = job{} // nothing of the last record is kept while waiting
		r.mu.Lock()
		r.idle = append(r.idle, w)
		r.mu.Unlock()
		var ok bool
		if j, ok = r.wait(w, t); !ok {
			return
		}
	}
}

// wait returns the next job handed to w, or false once a whole period of
// t has passed without one and w is off the idle stack.
func (r *runners) wait(w *runner, t *time.Timer) (job, bool) {
	ran := true
	for {
		select {
		case j := <-w.next:
			return j, true
		case <-t.C:
			if ran {
				ran = false
				t.Reset(r.every)
				continue
			}
			r.mu.Lock()
			// The longest idle are at the bottom: found in a few steps.
			if i := slices.Index(r.idle, w); i >= 0 {
				r.idle = slices.Delete(r.idle, i, i+1)
				r.mu.Unlock()
				return job{}, false
			}
			r.mu.Unlock()
			// Taken off the stack: its job is on the way. The timer fired
			// and was read, so it runs again from here, or this runner
			// would never again be told it was idle (an outside review).
			t.Reset(r.every)
			return <-w.next, true
		}
	}
}
