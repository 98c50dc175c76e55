package pipeline_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/pipeline"
)

// TestObserver: every report lands in its group's and topic's series, for
// each topic named when the observer was made (a stage has two) and for
// one that was not.
func TestObserver(t *testing.T) {
	m := obs.NewMetrics()
	joins := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "joins_total"}, []string{"group"})
	o := pipeline.NewObserver(m, "g", []string{"a", "c"}, joins)
	other := pipeline.NewObserver(m, "h", []string{"a"}, nil)

	o.InFlight(3)
	o.InFlight(-1)
	other.InFlight(5)
	o.Handled("a", 2*time.Second, 3*time.Second)
	o.Handled("a", -1, time.Second) // no timestamp: no wait
	o.Handled("b", time.Second, 4*time.Second)
	o.Handled("c", 5*time.Second, 6*time.Second)
	other.Handled("a", time.Second, time.Second)
	o.Committed("a", 2, 41)
	o.JoinFailed(errors.New("x"))
	other.JoinFailed(errors.New("x")) // no counter: nothing

	if got := testutil.ToFloat64(m.InFlight.WithLabelValues("g")); got != 2 {
		t.Errorf("in flight for g = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.InFlight.WithLabelValues("h")); got != 5 {
		t.Errorf("in flight for h = %v, want 5", got)
	}
	if got := testutil.ToFloat64(m.Committed.WithLabelValues("g", "a", "2")); got != 41 {
		t.Errorf("committed = %v, want 41", got)
	}
	if got := testutil.ToFloat64(joins.WithLabelValues("g")); got != 1 {
		t.Errorf("failed joins of g = %v, want 1", got)
	}
	for _, tc := range []struct {
		vec          *prometheus.HistogramVec
		group, topic string
		count        int
		sum          float64
	}{
		{m.RecordWait, "g", "a", 1, 2},
		{m.Handle, "g", "a", 2, 4},
		{m.RecordWait, "g", "b", 1, 1},
		{m.Handle, "g", "b", 1, 4},
		{m.RecordWait, "g", "c", 1, 5},
		{m.Handle, "g", "c", 1, 6},
		{m.Handle, "h", "a", 1, 1},
	} {
		count, sum := histogram(t, tc.vec, tc.group, tc.topic)
		if count != tc.count || sum != tc.sum {
			t.Errorf("%s{%s,%s}: %d observations summing to %v, want %d and %v", name(tc.vec), tc.group, tc.topic, count, sum, tc.count, tc.sum)
		}
	}
}

func name(v *prometheus.HistogramVec) string {
	ch := make(chan *prometheus.Desc, 1)
	v.Describe(ch)
	d := (<-ch).String()
	_, after, _ := strings.Cut(d, `fqName: "`)
	n, _, _ := strings.Cut(after, `"`)
	return n
}

func histogram(t *testing.T, v *prometheus.HistogramVec, group, topic string) (int, float64) {
	t.Helper()
	h, err := v.GetMetricWithLabelValues(group, topic)
	if err != nil {
		t.Fatal(err)
	}
	metric, ok := h.(prometheus.Metric)
	if !ok {
		t.Fatalf("series %s,%s is not a metric", group, topic)
	}
	var out dto.Metric
	if err := metric.Write(&out); err != nil {
		t.Fatal(err)
	}
	return int(out.GetHistogram().GetSampleCount()), out.GetHistogram().GetSampleSum()
}

// BenchmarkObserver is what herald's consumers report per record (InFlight
// up, Handled, InFlight down), with the series looked up once per group
// and topic, against looking them up by label values on every call as
// herald did before.
func BenchmarkObserver(b *testing.B) {
	const group, topic = "herald-email", "herald.email.v1"
	m := obs.NewMetrics()
	o := pipeline.NewObserver(m, group, []string{topic}, nil)
	for _, bc := range []struct {
		name   string
		record func()
	}{
		{"by-labels", func() {
			m.InFlight.WithLabelValues(group).Add(1)
			m.RecordWait.WithLabelValues(group, topic).Observe(0.001)
			m.Handle.WithLabelValues(group, topic).Observe(0.002)
			m.InFlight.WithLabelValues(group).Add(-1)
		}},
		{"looked-up", func() {
			o.InFlight(1)
			o.Handled(topic, time.Millisecond, 2*time.Millisecond)
			o.InFlight(-1)
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					bc.record()
				}
			})
		})
	}
}
