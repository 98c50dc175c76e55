package receipts

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gymhq/herald/notification"
)

// Metrics are the receipts' Prometheus series. A nil *Metrics counts
// nothing.
type Metrics struct {
	// Receipts counts receipts that moved to a status:
	// herald_delivery_receipts_total{channel,provider,status}.
	Receipts *prometheus.CounterVec
	// Callbacks counts provider callbacks by what became of them:
	// herald_delivery_receipt_callbacks_total{provider,result}.
	Callbacks *prometheus.CounterVec
}

// NewMetrics registers the series on reg (obs.Metrics.Registry in herald).
// The SMS series through Twilio are created up front, so dashboards see
// zeros rather than gaps.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Receipts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_delivery_receipts_total",
			Help: "Provider receipts that moved a message to a status (accepted, sent, delivered, undelivered, bounced, failed), by channel and provider.",
		}, []string{"channel", "provider", "status"}),
		Callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_delivery_receipt_callbacks_total",
			Help: "Provider status callbacks received, by what became of them (recorded, unchanged, unknown, ignored, forged, malformed, too_large, error).",
		}, []string{"provider", "result"}),
	}
	reg.MustRegister(m.Receipts, m.Callbacks)
	for _, s := range Statuses {
		m.Receipts.WithLabelValues(string(notification.SMS), ProviderTwilio, string(s))
	}
	for _, r := range results {
		m.Callbacks.WithLabelValues(ProviderTwilio, r)
	}
	return m
}

func (m *Metrics) receipt(r Receipt) {
	if m != nil {
		m.Receipts.WithLabelValues(string(r.Channel), r.Provider, string(r.Status)).Inc()
	}
}

func (m *Metrics) callback(provider, result string) {
	if m != nil {
		m.Callbacks.WithLabelValues(provider, result).Inc()
	}
}

// rateBuckets is how many buckets an UndeliveredRate's window is cut into:
// the window slides in steps of window/rateBuckets.
const rateBuckets = 10

// UndeliveredRate is the share of final receipts per provider, over a
// sliding window, that say the message did not arrive (Status.Failed). It is
// fed from TwilioOptions.OnOutcome (or any other source of final receipts)
// and tells its callback after every observation, so that a failover can
// prefer the provider that delivers. Safe for concurrent use.
//
// Time is the receipts' own At, never a wall clock read here, so the same
// receipts give the same rates.
type UndeliveredRate struct {
	bucket   time.Duration
	onChange func(provider string, rate float64, finals int)

	mu  sync.Mutex
	per map[string]*rateRing
}

type rateRing struct {
	idx            [rateBuckets]int64 // which bucket each slot holds
	finals, failed [rateBuckets]int
}

// NewUndeliveredRate returns a rate over window (a minute when <= 0).
// onChange, when not nil, is called after each observed final receipt with
// its provider's rate and the number of final receipts in the window; it
// runs on the observer's goroutine, outside the rate's lock.
func NewUndeliveredRate(window time.Duration, onChange func(provider string, rate float64, finals int)) *UndeliveredRate {
	if window <= 0 {
		window = time.Minute
	}
	b := window / rateBuckets
	if b <= 0 {
		b = 1
	}
	return &UndeliveredRate{bucket: b, onChange: onChange, per: map[string]*rateRing{}}
}

// Observe counts r if its status is final. A receipt older than the window
// (relative to its own At) is counted in the buckets it falls in only while
// they are current.
func (u *UndeliveredRate) Observe(r Receipt) {
	if !r.Status.Final() {
		return
	}
	i := r.At.UnixNano() / int64(u.bucket)
	u.mu.Lock()
	ring := u.per[r.Provider]
	if ring == nil {
		ring = &rateRing{}
		for s := range ring.idx {
			ring.idx[s] = -1
		}
		u.per[r.Provider] = ring
	}
	s := slot(i)
	if ring.idx[s] < i {
		ring.idx[s], ring.finals[s], ring.failed[s] = i, 0, 0
	}
	if ring.idx[s] == i {
		ring.finals[s]++
		if r.Status.Failed() {
			ring.failed[s]++
		}
	}
	rate, finals := ring.rate(i)
	u.mu.Unlock()
	if u.onChange != nil {
		u.onChange(r.Provider, rate, finals)
	}
}

// Rate returns provider's undelivered share over the window ending at now,
// and how many final receipts it is computed from (0 and 0 when none).
func (u *UndeliveredRate) Rate(provider string, now time.Time) (rate float64, finals int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	ring := u.per[provider]
	if ring == nil {
		return 0, 0
	}
	return ring.rate(now.UnixNano() / int64(u.bucket))
}

func (r *rateRing) rate(now int64) (float64, int) {
	finals, failed := 0, 0
	for s := range r.idx {
		if r.idx[s] > now-rateBuckets && r.idx[s] <= now {
			finals += r.finals[s]
			failed += r.failed[s]
		}
	}
	if finals == 0 {
		return 0, 0
	}
	return float64(failed) / float64(finals), finals
}

func slot(i int64) int {
	s := i % rateBuckets
	if s < 0 {
		s += rateBuckets
	}
	return int(s)
}
