package receipts_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gymhq/herald/receipts"
)

func TestUndeliveredRate(t *testing.T) {
	type call struct {
		provider string
		status   receipts.Status
		at       time.Duration // after t0
	}
	rc := func(c call) receipts.Receipt {
		return receipts.Receipt{Provider: c.provider, Status: c.status, At: t0.Add(c.at)}
	}
	var seen []string
	u := receipts.NewUndeliveredRate(10*time.Minute, func(provider string, rate float64, finals int) {
		seen = append(seen, provider)
	})
	for _, c := range []call{
		{"twilio", receipts.StatusDelivered, 0},
		{"twilio", receipts.StatusUndelivered, time.Minute},
		{"twilio", receipts.StatusSent, time.Minute}, // not final: not counted, no callback
		{"twilio", receipts.StatusFailed, 2 * time.Minute},
		{"twilio", receipts.StatusDelivered, 3 * time.Minute},
		{"other", receipts.StatusDelivered, 3 * time.Minute},
	} {
		u.Observe(rc(c))
	}
	if strings.Join(seen, ",") != "twilio,twilio,twilio,twilio,other" {
		t.Errorf("callbacks for %v", seen)
	}
	tests := []struct {
		provider   string
		at         time.Duration
		wantRate   float64
		wantFinals int
	}{
		{"twilio", 3 * time.Minute, 0.5, 4},
		{"twilio", 10*time.Minute + 30*time.Second, 2.0 / 3, 3}, // the first minute has left the window
		{"twilio", 12*time.Minute + 30*time.Second, 0, 1},
		{"twilio", 20 * time.Minute, 0, 0},
		{"other", 3 * time.Minute, 0, 1},
		{"none", 3 * time.Minute, 0, 0},
	}
	for _, tt := range tests {
		if rate, finals := u.Rate(tt.provider, t0.Add(tt.at)); rate != tt.wantRate || finals != tt.wantFinals {
			t.Errorf("Rate(%s, +%v) = %v over %d, want %v over %d", tt.provider, tt.at, rate, finals, tt.wantRate, tt.wantFinals)
		}
	}
	// A bucket reused after the window restarts from zero.
	u.Observe(rc(call{"twilio", receipts.StatusUndelivered, 30 * time.Minute}))
	if rate, finals := u.Rate("twilio", t0.Add(30*time.Minute)); rate != 1 || finals != 1 {
		t.Errorf("after a reuse: %v over %d", rate, finals)
	}
}

func TestMetricsSeriesExistFromStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	receipts.NewMetrics(reg)
	n, err := testutil.GatherAndCount(reg, "herald_delivery_receipts_total", "herald_delivery_receipt_callbacks_total")
	if err != nil || n != len(receipts.Statuses)+8 {
		t.Errorf("%d series (%v), want %d", n, err, len(receipts.Statuses)+8)
	}
}
