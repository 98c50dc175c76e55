package obs

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// GroupMember is one consumer group's standing in this process, as the
// consumer-group metrics read it.
type GroupMember struct {
	Group  string
	Joined bool
	// Unjoined is how long the consumer has held no generation (zero while
	// it holds one).
	Unjoined time.Duration
}

// RegisterGroupMembership exports, read at scrape time from members:
//
//   - herald_consumer_group_member{group}: 1 while this process's consumer
//     of the group holds a generation, 0 while it is (re)joining;
//   - herald_consumer_group_unjoined_seconds{group}: how long it has held
//     none (0 while it holds one): the alert's input, since a group that
//     keeps rebalancing never settles at 1 for long;
//
// and returns herald_consumer_group_join_errors_total{group}, which the
// runtime's observer counts.
func RegisterGroupMembership(reg prometheus.Registerer, members func() []GroupMember) (*prometheus.CounterVec, error) {
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_consumer_group_join_errors_total", Help: "Failed attempts to join a consumer group (the log line \"consumer group join failed\" has the error).",
	}, []string{"group"})
	if err := reg.Register(errs); err != nil {
		return nil, err
	}
	if err := reg.Register(&groupCollector{members: members}); err != nil {
		return nil, err
	}
	return errs, nil
}

var (
	groupMemberDesc = prometheus.NewDesc("herald_consumer_group_member",
		"1 while this process holds a generation of the consumer group, 0 while it is joining or rebalancing.", []string{"group"}, nil)
	groupUnjoinedDesc = prometheus.NewDesc("herald_consumer_group_unjoined_seconds",
		"Seconds since this process last held a generation of the consumer group (0 while it holds one).", []string{"group"}, nil)
)

type groupCollector struct {
	members func() []GroupMember
}

func (c *groupCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- groupMemberDesc
	ch <- groupUnjoinedDesc
}

func (c *groupCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.members() {
		joined := 0.0
		if m.Joined {
			joined = 1
		}
		ch <- prometheus.MustNewConstMetric(groupMemberDesc, prometheus.GaugeValue, joined, m.Group)
		ch <- prometheus.MustNewConstMetric(groupUnjoinedDesc, prometheus.GaugeValue, m.Unjoined.Seconds(), m.Group)
	}
}
