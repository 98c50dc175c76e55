package kafkarun

import "testing"

func TestLagArithmetic(t *testing.T) {
	tests := []struct {
		name                  string
		committed, start, end int64
		want                  int64
	}{
		{"caught up", 10, 0, 10, 0},
		{"behind", 4, 0, 10, 6},
		{"nothing committed: from the oldest record", -1, 0, 10, 10},
		{"nothing committed, old records deleted", -1, 7, 10, 3},
		{"committed offset deleted by retention", 2, 7, 10, 3},
		{"empty partition", -1, 0, 0, 0},
		{"committed past a truncated log", 12, 0, 10, 0},
	}
	for _, tt := range tests {
		if got := lag(tt.committed, tt.start, tt.end); got != tt.want {
			t.Errorf("%s: lag(%d, %d, %d) = %d, want %d", tt.name, tt.committed, tt.start, tt.end, got, tt.want)
		}
	}
}
