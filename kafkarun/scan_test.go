package kafkarun_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/queue"
)

// Scan reads every partition from the first record at or after Since to the
// end, in offset order per partition, and stops on the callback's error.
func TestScan(t *testing.T) {
	const topic = "scan.v1"
	c, p := setup(t, topic, 3)
	now := time.Now()
	var msgs []queue.Message
	for i := range 60 {
		ts := now.Add(-3 * time.Hour) // the first 30 are old
		if i >= 30 {
			ts = now.Add(-time.Minute)
		}
		msgs = append(msgs, queue.Message{Topic: topic, Key: []byte("k" + strconv.Itoa(i%7)), Value: []byte(strconv.Itoa(i)),
			Headers: []queue.Header{{Key: "n", Value: []byte(strconv.Itoa(i))}}, Time: ts})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}

	scan := func(since time.Time) map[string]bool {
		var mu sync.Mutex
		seen := map[string]bool{}
		last := map[int]int64{}
		_, err := kafkarun.Scan(ctx, kafkarun.ScanConfig{Brokers: c.Brokers(), Since: since}, topic, func(m *queue.Message) error {
			mu.Lock()
			defer mu.Unlock()
			if prev, ok := last[m.Partition]; ok && m.Offset <= prev {
				t.Errorf("partition %d: offset %d after %d", m.Partition, m.Offset, prev)
			}
			last[m.Partition] = m.Offset
			if string(m.Header("n")) != string(m.Value) {
				t.Errorf("headers not carried: %q vs %q", m.Header("n"), m.Value)
			}
			seen[string(m.Value)] = true
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return seen
	}
	if all := scan(time.Time{}); len(all) != 60 {
		t.Errorf("scan from the start read %d records, want 60", len(all))
	}
	recent := scan(now.Add(-time.Hour))
	if len(recent) != 30 {
		t.Errorf("scan since an hour ago read %d records, want 30", len(recent))
	}
	for v := range recent {
		if n, _ := strconv.Atoi(v); n < 30 {
			t.Errorf("record %d is older than Since", n)
		}
	}
	if none := scan(now.Add(time.Hour)); len(none) != 0 {
		t.Errorf("scan since the future read %d records", len(none))
	}

	stop := errors.New("enough")
	_, err := kafkarun.Scan(ctx, kafkarun.ScanConfig{Brokers: c.Brokers()}, topic, func(*queue.Message) error { return stop })
	if !errors.Is(err, stop) {
		t.Errorf("Scan returned %v, want the callback's error", err)
	}
	if _, err := kafkarun.Scan(ctx, kafkarun.ScanConfig{Brokers: c.Brokers()}, "no.such.topic", func(*queue.Message) error { return nil }); err == nil {
		t.Error("scanning a missing topic succeeded")
	}
}

// Records written while a Scan runs are not read: a DLQ replay must never
// read what it wrote. Each record present at the start is read once.
func TestScanStopsAtTheStartingEnd(t *testing.T) {
	const topic, n = "scanned", 90
	c, p := setup(t, topic, 3)
	produce(t, p, topic, n, 9)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	seen := map[string]int{}
	wroteMore := false
	ranges, err := kafkarun.Scan(ctx, kafkarun.ScanConfig{Brokers: c.Brokers()}, topic, func(m *queue.Message) error {
		mu.Lock()
		defer mu.Unlock()
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
}
