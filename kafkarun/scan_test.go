package kafkarun_test

import (
	"context"
	"testing"
	"time"

	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/queue"
)

// TestScan reads every record present at the start, once, and none written
// while it runs.
func TestScan(t *testing.T) {
	const topic, n = "scanned", 90
	c, p := setup(t, topic, 3)
	produce(t, p, topic, n, 9)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seen := map[string]int{}
	wroteMore := false
	ranges, err := kafkarun.Scan(ctx, kafkarun.ScanConfig{Brokers: c.Brokers(), Topic: topic}, func(m *queue.Message) error {
		seen[string(m.Value)]++
		if !wroteMore {
			wroteMore = true
			produce(t, p, topic, 30, 3) // values 0..29 again: would double-count if read
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ranges) != 3 {
		t.Fatalf("ranges = %+v", ranges)
	}
	total := 0
	for v, k := range seen {
		if k != 1 {
			t.Errorf("value %s read %d times", v, k)
		}
		total += k
	}
	if total != n {
		t.Errorf("read %d records, want %d", total, n)
	}
	if _, err := kafkarun.Scan(ctx, kafkarun.ScanConfig{Brokers: c.Brokers(), Topic: "missing"}, func(*queue.Message) error { return nil }); err == nil {
		t.Error("scanning a missing topic succeeded")
	}
}
