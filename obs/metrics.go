package obs

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
)

// Outcomes of one notification message, final for that Kafka record.
const (
	OutcomeSent         = "sent"          // provider accepted it
	OutcomeDuplicate    = "duplicate"     // idempotency key said sent or failed already
	OutcomeRetry        = "retry"         // scheduled on the retry topic
	OutcomeFailed       = "failed"        // permanent failure, written to the DLQ
	OutcomeDeadLettered = "dead_lettered" // poison input, written to the DLQ
	OutcomeRefused      = "refused"       // address refused by the dispatcher, written to the DLQ, never queued
)

var outcomes = []string{OutcomeSent, OutcomeDuplicate, OutcomeRetry, OutcomeFailed, OutcomeDeadLettered, OutcomeRefused, OutcomeCapped, OutcomeDeferred}

// Event outcomes at the dispatcher.
const (
	EventDispatched   = "dispatched"
	EventUnknown      = "unknown_type"
	EventPoison       = "poison"
	EventRefused      = "refused" // a notification can never be written (too large): dead-lettered
	EventNoRecipients = "no_notifications"
)

// stageBuckets are the record wait's and the handler's: from a millisecond
// (a record fetched as it was written) to minutes (a backlog, a retry
// record waiting for its time).
var stageBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}

// Metrics are herald's Prometheus series. Create one per process with
// NewMetrics and share it between roles.
type Metrics struct {
	Registry      *prometheus.Registry
	Notifications *prometheus.CounterVec   // channel, outcome, reason
	SendLatency   *prometheus.HistogramVec // channel
	EndToEnd      *prometheus.HistogramVec // channel: event time → provider accepted
	InFlight      *prometheus.GaugeVec     // group
	DedupeHits    *prometheus.CounterVec   // channel, state
	Retries       *prometheus.CounterVec   // channel, reason
	DLQWrites     *prometheus.CounterVec   // stage, reason
	Events        *prometheus.CounterVec   // outcome
	Fanout        prometheus.Histogram     // notifications per event
	Shortened     *prometheus.CounterVec   // channel, template: messages cut to fit their budget
	Committed     *prometheus.GaugeVec     // group, topic, partition
	RecordWait    *prometheus.HistogramVec // group, topic: record timestamp → handler's first call
	Handle        *prometheus.HistogramVec // group, topic: handler's first call → durable outcome
	Superseded    *prometheus.CounterVec   // group, topic: records conflated away unhandled
	Stalls        *Stalls                  // herald_partition_stalled_seconds (stall.go)
	Protect       *ProtectMetrics          // suppressions, rate limit, breakers (protect.go)
	// RedisEvictionUnsafe is 1 while the worker runs, by
	// HERALD_REDIS_ALLOW_EVICTION, on a Redis that may evict its keys.
	RedisEvictionUnsafe prometheus.Gauge
	Schedule            *ScheduleMetrics // schedule.go
}

// NewMetrics registers every series. Label combinations from closed sets are
// created up front so that dashboards and alerts see zeros, not gaps.
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		Registry: r,
		Notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_notifications_total", Help: "Final outcomes of notification records, by channel, outcome and failure reason (\"\" when none).",
		}, []string{"channel", "outcome", "reason"}),
		SendLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "herald_send_duration_seconds", Help: "Provider call latency per attempt.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"channel"}),
		EndToEnd: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "herald_end_to_end_seconds", Help: "Time from the notification's creation to the provider accepting it.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"channel"}),
		InFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_in_flight", Help: "Fetched records without a durable outcome yet.",
		}, []string{"group"}),
		DedupeHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_idempotency_hits_total", Help: "Notifications recognised as already handled, by the state found.",
		}, []string{"channel", "state"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_retries_total", Help: "Send attempts that failed retryably and were tried again.",
		}, []string{"channel", "reason"}),
		DLQWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_dlq_writes_total", Help: "Records written to herald.dlq.v1, by stage and reason.",
		}, []string{"stage", "reason"}),
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_events_total", Help: "Booking events consumed by the dispatcher, by outcome.",
		}, []string{"outcome"}),
		Fanout: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "herald_event_fanout", Help: "Notifications planned per dispatched event.",
			Buckets: []float64{0, 1, 2, 3, 5, 10, 25, 50, 100, 250},
		}),
		Shortened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_messages_shortened_total", Help: "Messages whose free-text fields were cut with an ellipsis to keep them within their budget (SMS segments), by channel and template.",
		}, []string{"channel", "template"}),
		Committed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_committed_offset", Help: "Last committed offset per group and partition.",
		}, []string{"group", "topic", "partition"}),
		RecordWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "herald_record_wait_seconds", Help: "Time from a record's timestamp (its producer's clock, milliseconds) to the first call of its handler: the broker, the fetch and the in-flight queue.",
			Buckets: stageBuckets,
		}, []string{"group", "topic"}),
		Handle: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "herald_handle_duration_seconds", Help: "Time from the first call of a record's handler to its durable outcome, retries in the process included.",
			Buckets: stageBuckets,
		}, []string{"group", "topic"}),
		Superseded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_superseded_total", Help: "Records passed over without being handled because a later record of their key in the same fetch stood for them (the dashboards' live values only); counted as the fetch is read, so again by the next owner after a rebalance.",
		}, []string{"group", "topic"}),
	}
	m.Stalls = NewStalls(nil)
	r.MustRegister(m.Notifications, m.SendLatency, m.EndToEnd, m.InFlight, m.DedupeHits, m.Retries, m.DLQWrites, m.Events, m.Fanout, m.Shortened, m.Committed, m.RecordWait, m.Handle, m.Superseded, m.Stalls)
	for _, ch := range notification.Known() {
		c := string(ch)
		for _, o := range outcomes {
			m.Notifications.WithLabelValues(c, o, "")
		}
		for _, r := range failure.Reasons {
			m.Notifications.WithLabelValues(c, OutcomeFailed, string(r))
			m.Notifications.WithLabelValues(c, OutcomeRetry, string(r))
			m.Retries.WithLabelValues(c, string(r))
		}
		// A channel's own permanent reasons (a webhook's endpoint_gone)
		// are named by its descriptor.
		for _, r := range notification.SpecOf(ch).SuppressOn {
			m.Notifications.WithLabelValues(c, OutcomeFailed, r)
		}
		m.SendLatency.WithLabelValues(c)
		m.EndToEnd.WithLabelValues(c)
		m.DedupeHits.WithLabelValues(c, "sent")
		m.DedupeHits.WithLabelValues(c, "failed")
		m.DLQWrites.WithLabelValues(c, string(failure.ReasonRender))
	}
	for _, o := range []string{EventDispatched, EventUnknown, EventPoison, EventRefused, EventNoRecipients} {
		m.Events.WithLabelValues(o)
	}
	for _, r := range []failure.Reason{failure.ReasonDecode, failure.ReasonInvalid, failure.ReasonTooLarge, failure.ReasonInvalidAddress, failure.ReasonDestinationDenied} {
		m.DLQWrites.WithLabelValues("dispatcher", string(r))
	}
	for _, ch := range notification.Known() {
		for _, r := range []failure.Reason{failure.ReasonInvalidAddress, failure.ReasonDestinationDenied} {
			m.Notifications.WithLabelValues(string(ch), OutcomeRefused, string(r))
		}
	}
	m.registerProtect()
	m.registerSchedule()
	m.RedisEvictionUnsafe = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "herald_redis_eviction_policy_unsafe",
		Help: "1 when a master's maxmemory-policy may evict herald's keys and HERALD_REDIS_ALLOW_EVICTION=on lets the worker run anyway; 0 otherwise.",
	})
	r.MustRegister(m.RedisEvictionUnsafe)
	return m
}
