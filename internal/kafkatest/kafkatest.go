// Package kafkatest starts an in-process Kafka cluster (franz-go's kfake,
// which speaks the real wire protocol) for tests and `herald dev`.
package kafkatest

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Cluster is a running in-process cluster.
type Cluster struct {
	*kfake.Cluster
}

// New starts a cluster with the given options plus herald's defaults: one
// broker, a short minimum session timeout so tests can rebalance quickly.
func New(opts ...kfake.Opt) (*Cluster, error) {
	base := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.GroupMinSessionTimeout(time.Second),
	}
	c, err := kfake.NewCluster(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafkatest: start cluster: %w", err)
	}
	return &Cluster{c}, nil
}

// Start starts a cluster for a test and closes it when the test ends.
func Start(tb testing.TB, opts ...kfake.Opt) *Cluster {
	tb.Helper()
	c, err := New(opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c
}

// Brokers returns the listen addresses.
func (c *Cluster) Brokers() []string { return c.ListenAddrs() }
