package gateway

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	connections *prometheus.GaugeVec
	sent        *prometheus.CounterVec
	disconnects *prometheus.CounterVec
	refused     *prometheus.CounterVec
	catchUps    prometheus.Counter
	resyncs     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_gateway_connections", Help: "Open feed streams on this gateway pod, by transport (sse, ws).",
		}, []string{"transport"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_gateway_sent_total", Help: "Feed items and read marks written to streams, by transport and kind (notification, read, live).",
		}, []string{"transport", "kind"}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_gateway_disconnects_total", Help: "Streams ended, by reason: closed (by the client), slow (a write blocked past HERALD_GATEWAY_WRITE_TIMEOUT), replaced (the person's oldest past HERALD_GATEWAY_MAX_CONNECTIONS_PER_PERSON), shutdown, expired (its token).",
		}, []string{"reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_gateway_refused_total", Help: "Requests refused, by reason: unauthorized (401), over_capacity (503 at HERALD_GATEWAY_MAX_CONNECTIONS).",
		}, []string{"reason"}),
		catchUps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_gateway_catchups_total", Help: "Times a stream read its feed to catch up: at connect, after a missed change, after a resync.",
		}),
		resyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_gateway_resyncs_total", Help: "Times this pod's subscription to feed changes was re-established, making every stream catch up from its feed.",
		}),
	}
	for _, t := range []string{"sse", "ws"} {
		m.connections.WithLabelValues(t)
		m.sent.WithLabelValues(t, "notification")
		m.sent.WithLabelValues(t, "read")
		m.sent.WithLabelValues(t, "live")
	}
	for _, r := range []string{"closed", "slow", "replaced", "shutdown", "expired"} {
		m.disconnects.WithLabelValues(r)
	}
	m.refused.WithLabelValues("unauthorized")
	m.refused.WithLabelValues("over_capacity")
	if reg != nil {
		for _, c := range []prometheus.Collector{m.connections, m.sent, m.disconnects, m.refused, m.catchUps, m.resyncs} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					return nil, err
				}
			}
		}
	}
	return m, nil
}
