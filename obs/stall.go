package obs

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Stalls measures, per consumer group, topic and partition, how long
// records have waited on a partition whose commit point does not move: the
// seconds since its committed offset last moved, counted only while records
// wait behind it (lag > 0), and 0 when none wait. It is
// herald_partition_stalled_seconds.
//
// A record that keeps failing — the runtime retries a handler error without
// end, by design, since most such errors are outages that pass — holds its
// partition's commit point while its handler keeps finishing, so /healthz
// sees progress and /readyz sees nothing wrong. Only this figure shows it.
// It is computed from what Kafka records, not from what handlers do, so it
// also covers a partition no live member holds.
//
// It is fed by the runtime's commits in this process (Committed) and by
// the lag poller's view of the whole group (Lag); the value is computed at
// scrape time, so it grows between polls. Every pod of a role exports the
// same partitions; alerts take the max.
//
// Safe for concurrent use. The zero value is not usable: call NewStalls.
type Stalls struct {
	now   func() time.Time
	desc  *prometheus.Desc
	mu    sync.Mutex
	parts map[stallKey]*stallState
}

type stallKey struct {
	group, topic string
	partition    int
}

type stallState struct {
	committed int64
	lag       int64
	// since is when the commit point last moved, or when a poll first saw
	// records waiting, whichever is later: the start of the stall. Counting
	// from the first poll that saw them (not the last that saw none) errs
	// short by at most one poll interval, never long, so an idle
	// partition's first record cannot look stuck already.
	since time.Time
}

// NewStalls returns a Stalls reading time from now (time.Now when nil).
func NewStalls(now func() time.Time) *Stalls {
	if now == nil {
		now = time.Now
	}
	return &Stalls{
		now: now,
		desc: prometheus.NewDesc("herald_partition_stalled_seconds",
			"Seconds since the group's committed offset on the partition last moved while records wait behind it (lag > 0); 0 when none wait.",
			[]string{"group", "topic", "partition"}, nil),
		parts: map[stallKey]*stallState{},
	}
}

// Committed records a commit of offset on a partition by this process.
func (s *Stalls) Committed(group, topic string, partition int, offset int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.state(stallKey{group, topic, partition}, offset)
	if st.committed != offset {
		st.committed, st.since = offset, s.now()
	}
}

// Lag records a poll of the group's committed offset (-1 for none) and
// lag on a partition.
func (s *Stalls) Lag(group, topic string, partition int, committed, lag int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.state(stallKey{group, topic, partition}, committed)
	if st.committed != committed || st.lag <= 0 {
		st.committed, st.since = committed, s.now()
	}
	st.lag = lag
}

// Forget drops a partition that no longer exists (its topic deleted):
// its stall would otherwise grow for ever.
func (s *Stalls) Forget(group, topic string, partition int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.parts, stallKey{group, topic, partition})
}

// state returns the partition's state, created as moving now.
func (s *Stalls) state(k stallKey, committed int64) *stallState {
	st := s.parts[k]
	if st == nil {
		st = &stallState{committed: committed, since: s.now()}
		s.parts[k] = st
	}
	return st
}

// Describe implements prometheus.Collector.
func (s *Stalls) Describe(ch chan<- *prometheus.Desc) { ch <- s.desc }

// Collect implements prometheus.Collector.
func (s *Stalls) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for k, st := range s.parts {
		v := 0.0
		if st.lag > 0 {
			v = max(now.Sub(st.since).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(s.desc, prometheus.GaugeValue, v, k.group, k.topic, strconv.Itoa(k.partition))
	}
}
