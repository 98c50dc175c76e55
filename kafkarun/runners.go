package kafkarun

import "time"

// runners runs functions on goroutines that outlive them: an idle one if
// any is waiting, else a new one, which waits runnerIdle for more work
// before it exits. A goroutine started per message, per grouped write or
// per fetch request grows its stack from the minimum every time; a runner
// keeps its grown stack for the next. (runtime.copystack was 3% of the
// pipeline's CPU with a goroutine per message; runtime.newstack was 1.8%
// of the latency scenario's process CPU in one profile, more than half of
// it in goroutines started per grouped write and per fetch request; issue
// 14.)
// There are never more runners than functions running at once.
type runners struct{ idle chan func() }

// runnerIdle is how long a runner waits for more work before it exits.
const runnerIdle = 5 * time.Second

func newRunners() *runners { return &runners{idle: make(chan func())} }

// run runs f on a runner.
func (r *runners) run(f func()) {
	select {
	case r.idle <- f:
	default:
		go r.loop(f)
	}
}

func (r *runners) loop(f func()) {
	t := time.NewTimer(runnerIdle)
	defer t.Stop()
	for {
		f()
		f = nil
		t.Reset(runnerIdle)
		select {
		case f = <-r.idle:
		case <-t.C:
			return
		}
	}
}
