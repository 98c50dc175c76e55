package obs

import "github.com/prometheus/client_golang/prometheus"

// Outcomes of notifications that wait (package schedule).
const (
	// OutcomeCancelled is final: a scheduled notification withdrawn by an
	// event its rule's cancel_on names, never sent.
	OutcomeCancelled = "cancelled"
	// OutcomeCapped is final: over its category's frequency cap with
	// policy drop, never sent.
	OutcomeCapped = "capped"
	// OutcomeExpired is final: past its expiry (a reminder whose class has
	// started) when a worker took it, never sent.
	OutcomeExpired = "expired"
	// ReasonOptedOut is the reason of a cancelled notification its person
	// turned off after it was planned: its idempotency key's failure
	// reason, and the outcome line's.
	ReasonOptedOut = "opted_out"
	// OutcomeDeferred is not final: handed to the scheduler until it is
	// due (a schedule, quiet hours, a cap with policy defer, a retry).
	OutcomeDeferred = "deferred"
)

// ScheduleMetrics are the scheduler's series.
type ScheduleMetrics struct {
	// Held counts notifications handed to the scheduler, by channel and
	// why (schedule, quiet_hours, cap, retry).
	Held *prometheus.CounterVec
	// Outcomes counts what became of held notifications: fired or
	// cancelled (by channel when known).
	Outcomes *prometheus.CounterVec
	// Lateness observes how long after its due time a notification was
	// published to its topic.
	Lateness prometheus.Histogram
	// Pending is the index's pending and leased entries, sampled.
	Pending prometheus.Gauge
	// Rebuilds counts partitions re-read into the index from the topic.
	Rebuilds prometheus.Counter
	// Paused is 1 while firing waits for a rebuild.
	Paused prometheus.Gauge
	// Refreshed counts schedule records written to the topic again
	// because the topic would have dropped them before they were due.
	Refreshed prometheus.Counter
}

func (m *Metrics) registerSchedule() {
	s := &ScheduleMetrics{
		Held: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_scheduled_total", Help: "Notifications handed to the scheduler until due, by channel and why (schedule, quiet_hours, cap, retry).",
		}, []string{"channel", "why"}),
		Outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_schedule_outcomes_total", Help: "What became of scheduled notifications: fired (published to their topic when due) or cancelled (withdrawn by an event; final, never sent).",
		}, []string{"outcome"}),
		Lateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "herald_schedule_lateness_seconds", Help: "Time from a scheduled notification's due time to its publication on its topic.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		Pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_schedule_pending", Help: "Notifications waiting in the scheduler's index (sampled by the firing loop).",
		}),
		Rebuilds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_schedule_rebuilds_total", Help: "Schedule topic partitions re-read into the index because it lacked them (first start, or Redis lost its contents).",
		}),
		Paused: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_schedule_paused", Help: "1 while nothing fires because the index is being rebuilt from the schedule topic.",
		}),
		Refreshed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_schedule_refreshed_total", Help: "Schedule records written to the schedule topic again because its retention would have dropped them before they were due (a reminder booked further ahead than the retention).",
		}),
	}
	m.Registry.MustRegister(s.Held, s.Outcomes, s.Lateness, s.Pending, s.Rebuilds, s.Paused, s.Refreshed)
	for _, o := range []string{"fired", OutcomeCancelled} {
		s.Outcomes.WithLabelValues(o)
	}
	m.Schedule = s
}
