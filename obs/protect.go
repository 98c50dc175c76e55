package obs

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gymhq/herald/notification"
)

// OutcomeSuppressed is the outcome of a notification whose address is on
// the suppression list: durable, not sent, not an error.
const OutcomeSuppressed = "suppressed"

// ProtectMetrics are the series of provider feedback and provider
// protection (suppressions, the shared rate limit, circuit breakers).
type ProtectMetrics struct {
	// Suppressions counts addresses added to the suppression list.
	Suppressions *prometheus.CounterVec // channel, reason
	// Suppressed counts notifications not sent because their address was
	// suppressed (also counted in herald_notifications_total).
	Suppressed *prometheus.CounterVec // channel, reason
	// RateLimitWait observes how long sends waited for the shared rate.
	RateLimitWait *prometheus.HistogramVec // channel
	// RateLimitWaits counts sends that had to wait at all.
	RateLimitWaits *prometheus.CounterVec // channel
	// BreakerState is 0 closed, 1 half-open, 2 open.
	BreakerState *prometheus.GaugeVec // channel
	// BreakerTransitions counts state changes by the state entered.
	BreakerTransitions *prometheus.CounterVec // channel, state
	// ProviderSends and ProviderBreakerState are per provider of a
	// channel with several (channels/failover); the series appear with
	// the providers.
	ProviderSends        *prometheus.CounterVec // channel, provider, outcome (sent, failed)
	ProviderBreakerState *prometheus.GaugeVec   // channel, provider
	// EndpointsOpen counts, per channel, the endpoints (failover
	// providers, webhook subscriptions) whose own breaker is open; 0 for
	// every channel from the start, so an alert can read it.
	EndpointsOpen *prometheus.GaugeVec // channel
}

func (m *Metrics) registerProtect() {
	p := &ProtectMetrics{
		Suppressions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_suppressions_added_total", Help: "Addresses added to the suppression list from provider feedback, by channel and reason.",
		}, []string{"channel", "reason"}),
		Suppressed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_suppressed_total", Help: "Notifications not sent because their address is suppressed, by channel and the suppression's reason.",
		}, []string{"channel", "reason"}),
		RateLimitWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "herald_rate_limit_wait_seconds", Help: "Time a send waited for the fleet-wide provider rate.",
			Buckets: []float64{0, .001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"channel"}),
		RateLimitWaits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_rate_limit_waits_total", Help: "Sends that had to wait for the fleet-wide provider rate.",
		}, []string{"channel"}),
		BreakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_circuit_breaker_state", Help: "Provider circuit breaker per channel: 0 closed, 1 half-open (probing), 2 open (channel paused).",
		}, []string{"channel"}),
		BreakerTransitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_circuit_breaker_transitions_total", Help: "Circuit breaker state changes, by the state entered.",
		}, []string{"channel", "state"}),
	}
	p.ProviderSends = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_provider_sends_total", Help: "Provider calls of a channel with several providers, by provider and outcome (sent, failed).",
	}, []string{"channel", "provider", "outcome"})
	p.ProviderBreakerState = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "herald_provider_breaker_state", Help: "Circuit breaker of each provider of a channel with several: 0 closed, 1 half-open, 2 open (out of the rotation).",
	}, []string{"channel", "provider"})
	p.EndpointsOpen = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "herald_endpoints_open", Help: "Endpoints of a channel with several (failover providers, webhook subscriptions) whose own circuit breaker is open.",
	}, []string{"channel"})
	m.Registry.MustRegister(p.Suppressions, p.Suppressed, p.RateLimitWait, p.RateLimitWaits, p.BreakerState, p.BreakerTransitions, p.ProviderSends, p.ProviderBreakerState, p.EndpointsOpen)
	for _, ch := range notification.Known() {
		c := string(ch)
		for _, r := range notification.SpecOf(ch).SuppressOn {
			p.Suppressions.WithLabelValues(c, r)
			p.Suppressed.WithLabelValues(c, r)
			m.Notifications.WithLabelValues(c, OutcomeSuppressed, r)
		}
		p.RateLimitWait.WithLabelValues(c)
		p.RateLimitWaits.WithLabelValues(c)
		p.BreakerState.WithLabelValues(c)
		p.EndpointsOpen.WithLabelValues(c)
		for _, s := range []string{"closed", "half-open", "open"} {
			p.BreakerTransitions.WithLabelValues(c, s)
		}
	}
	m.Protect = p
}
