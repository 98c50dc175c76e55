package obs

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisterConsumerLag registers herald_consumer_lag on r, or returns the one
// already registered there. Its series appear with the first poll of the
// brokers, one per group, topic and partition; every pod of a role exports
// the same values (each polls its group), so alerts take max by partition.
func RegisterConsumerLag(r prometheus.Registerer) (*prometheus.GaugeVec, error) {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "herald_consumer_lag",
		Help: "Records between the consumer group's committed offset and the partition's high watermark, polled from the brokers.",
	}, []string{"group", "topic", "partition"})
	if err := r.Register(g); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.GaugeVec); ok {
				return existing, nil
			}
		}
		return nil, err
	}
	return g, nil
}
