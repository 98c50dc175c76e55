package kafkarun

import (
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
type runners struct {
	idle chan job
	// every is how often a runner checks whether it ran anything since
	// it last checked, and exits if not (runnerIdle).
	every time.Duration
}

// runnerIdle is how often a runner checks for having been idle: it exits
// once it has run nothing for a whole period, after between one and two
// periods without work.
const runnerIdle = 5 * time.Second

func newRunners() *runners { return &runners{idle: make(chan job), every: runnerIdle} }

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
	select {
	case r.idle <- j:
	default:
		go r.loop(j)
	}
}

// loop runs j, then what it is handed, until a period of its timer passes
// without any. The timer is not reset per function: a Reset per record
// was 1% of the plumbing floor's CPU (issue 14).
func (r *runners) loop(j job) {
	t := time.NewTimer(r.every)
	defer t.Stop()
	for {
		j.do()
		j = job{} // nothing of the last record is kept while waiting
		ran, more := true, false
		for !more {
			select {
			case j = <-r.idle:
				more = true
			case <-t.C:
				if !ran {
					return
				}
				ran = false
				t.Reset(r.every)
			}
		}
	}
}
