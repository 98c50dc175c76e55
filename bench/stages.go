package bench

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/gymhq/herald/kafkarun"
)

// stages times each record herald's consumers handle, through the
// consumer's own Observer hook (the one that feeds
// herald_record_wait_seconds and herald_handle_duration_seconds): how long
// it waited from its timestamp to its handler, and how long the handler
// took. The latency scenario reports them, to show where its time goes.
// Record timestamps have millisecond precision, so a wait can read up to a
// millisecond long.
type stages struct {
	mu    sync.Mutex
	topic map[string]*stageTimes
}

type stageTimes struct{ wait, took []time.Duration }

func newStages() *stages { return &stages{topic: map[string]*stageTimes{}} }

// timedObserver is a consumer's observer that also tells stages.
type timedObserver struct {
	kafkarun.Observer
	s *stages
}

func (o *timedObserver) Handled(topic string, wait, took time.Duration) {
	o.Observer.Handled(topic, wait, took)
	o.s.Handled(topic, wait, took)
}

func (s *stages) Handled(topic string, wait, took time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.topic[topic]
	if t == nil {
		t = &stageTimes{}
		s.topic[topic] = t
	}
	if wait >= 0 {
		t.wait = append(t.wait, wait)
	}
	t.took = append(t.took, took)
}

// words describes the stages: the events topic first, then every channel
// topic together (the notifications' second hop), as p50/p99 in ms.
func (s *stages) words(events string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ev, ch stageTimes
	for topic, t := range s.topic {
		x := &ch
		if topic == events {
			x = &ev
		}
		x.wait = append(x.wait, t.wait...)
		x.took = append(x.took, t.took...)
	}
	pp := func(d []time.Duration) string {
		if len(d) == 0 {
			return "-"
		}
		slices.Sort(d)
		return fmt.Sprintf("%.1f/%.1f", percentile(d, 50), percentile(d, 99))
	}
	return fmt.Sprintf("where the time went, p50/p99 ms (herald's consumer timings: record timestamp → handler, handler → durable outcome): events %s waiting, %s in the dispatcher; notifications %s waiting, %s in the channel workers (the hops overlap, so they do not add up to the latency: the dispatcher's time runs until the last of an event's notifications is published, the channel workers' until each is recorded sent, after its send)",
		pp(ev.wait), pp(ev.took), pp(ch.wait), pp(ch.took))
}
