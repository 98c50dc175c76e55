package kafkarun

import "testing"

func TestWatermark(t *testing.T) {
	tests := []struct {
		name  string
		start int64
		add   []int64
		done  []int64
		want  int64
		left  int
	}{
		{"nothing fetched", 5, nil, nil, 5, 0},
		{"all done in order", 0, []int64{0, 1, 2}, []int64{0, 1, 2}, 3, 0},
		{"gap held by first", 0, []int64{0, 1, 2}, []int64{1, 2}, 0, 3},
		{"out of order completes", 0, []int64{0, 1, 2}, []int64{2, 1, 0}, 3, 0},
		{"middle pending", 10, []int64{10, 11, 12, 13}, []int64{10, 11, 13}, 12, 2},
		{"offset gaps from compaction", 0, []int64{3, 7, 9}, []int64{3, 7}, 9, 1},
		{"gap before first fetch", 0, []int64{4}, []int64{4}, 5, 0},
		{"unknown offset ignored", 0, []int64{0}, []int64{42}, 0, 1},
		{"done twice", 0, []int64{0, 1}, []int64{0, 0}, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWatermark(tt.start)
			for _, o := range tt.add {
				w.add(o)
			}
			for _, o := range tt.done {
				w.done(o)
			}
			if got := w.commitPoint(); got != tt.want {
				t.Errorf("commitPoint = %d, want %d", got, tt.want)
			}
			if got := w.outstanding(); got != tt.left {
				t.Errorf("outstanding = %d, want %d", got, tt.left)
			}
		})
	}
}

func TestWatermarkInterleaved(t *testing.T) {
	w := newWatermark(0)
	w.add(0)
	w.add(1)
	w.done(1)
	w.add(2)
	if got := w.commitPoint(); got != 0 {
		t.Fatalf("commitPoint = %d, want 0", got)
	}
	w.done(0)
	if got := w.commitPoint(); got != 2 {
		t.Fatalf("commitPoint = %d, want 2", got)
	}
	w.done(2)
	if got := w.commitPoint(); got != 3 {
		t.Fatalf("commitPoint = %d, want 3", got)
	}
}

func BenchmarkWatermark(b *testing.B) {
	w := newWatermark(0)
	const window = 256
	for i := 0; i < b.N; i++ {
		w.add(int64(i))
		if i >= window {
			// complete slightly out of order
			w.done(int64(i - window + (i % 3)))
			w.done(int64(i - window))
		}
	}
}
