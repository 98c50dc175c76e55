package pipeline

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/obs"
)

// Observer feeds one consumer group's runtime progress into the metrics:
// the records it holds (herald_in_flight), how long each waited and took
// (herald_record_wait_seconds, herald_handle_duration_seconds), its
// commits and failed joins. herald run gives one to every consumer, and
// the bench does too, so that what is measured pays for them.
//
// InFlight and Handled run twice and once per record. Their series are
// looked up when the Observer is made, for the group's topics: finding a
// series by its label values hashes them and takes the vector's lock, four
// times per record (BenchmarkObserver). A topic not named then is looked
// up per call.
type Observer struct {
	kafkarun.NopObserver // assignments and revokes: the liveness wrapper has them
	m                    *obs.Metrics
	group                string
	joinErrors           *prometheus.CounterVec // nil when the group metrics could not register
	inFlight             prometheus.Gauge
	topics               map[string]topicSeries // read-only once made
}

type topicSeries struct{ wait, handle prometheus.Observer }

// NewObserver returns the observer of group, which consumes topics.
// joinErrors counts its failed joins; nil counts none.
func NewObserver(m *obs.Metrics, group string, topics []string, joinErrors *prometheus.CounterVec) *Observer {
	o := &Observer{m: m, group: group, joinErrors: joinErrors, inFlight: m.InFlight.WithLabelValues(group),
		topics: make(map[string]topicSeries, len(topics))}
	for _, t := range topics {
		o.topics[t] = o.series(t)
	}
	return o
}

func (o *Observer) series(topic string) topicSeries {
	return topicSeries{wait: o.m.RecordWait.WithLabelValues(o.group, topic), handle: o.m.Handle.WithLabelValues(o.group, topic)}
}

func (o *Observer) JoinFailed(error) {
	if o.joinErrors != nil {
		o.joinErrors.WithLabelValues(o.group).Inc()
	}
}

func (o *Observer) Committed(topic string, partition int, offset int64) {
	o.m.Committed.WithLabelValues(o.group, topic, fmt.Sprint(partition)).Set(float64(offset))
	o.m.Stalls.Committed(o.group, topic, partition, offset)
}

func (o *Observer) InFlight(delta int) { o.inFlight.Add(float64(delta)) }

func (o *Observer) Handled(topic string, wait, took time.Duration) {
	s, ok := o.topics[topic]
	if !ok {
		s = o.series(topic)
	}
	if wait >= 0 {
		s.wait.Observe(wait.Seconds())
	}
	s.handle.Observe(took.Seconds())
}

func (o *Observer) Superseded(topic string, n int) {
	o.m.Superseded.WithLabelValues(o.group, topic).Add(float64(n))
}
