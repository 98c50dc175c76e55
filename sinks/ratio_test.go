package sinks_test

import (
	"testing"

	"github.com/gymhq/herald/sinks"
)

func TestRatio(t *testing.T) {
	for _, tc := range []struct {
		p         float64
		n, failed int
	}{
		{0, 100, 0}, {0.1, 100, 10}, {0.1, 1000, 100}, {0.25, 100, 25}, {1, 50, 50}, {2, 10, 10}, {-1, 10, 0},
	} {
		var r sinks.Ratio
		r.Set(tc.p)
		got, run, maxRun := 0, 0, 0
		for range tc.n {
			if r.Next() {
				got++
				run++
				maxRun = max(maxRun, run)
			} else {
				run = 0
			}
		}
		if got != tc.failed {
			t.Errorf("p=%v over %d: %d failed, want %d", tc.p, tc.n, got, tc.failed)
		}
		if tc.p > 0 && tc.p < 0.5 && maxRun > 1 {
			t.Errorf("p=%v: %d failures in a row; want them spread", tc.p, maxRun)
		}
	}
	var zero sinks.Ratio
	if zero.Next() {
		t.Error("the zero Ratio failed a request")
	}
}
