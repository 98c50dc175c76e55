package kafkarun

import "sort"

// watermark tracks, for one partition, which fetched offsets have a durable
// outcome, and yields the commit point: the lowest offset that does not.
// Offsets must be added in increasing order (fetch order); they need not be
// contiguous (compaction and transaction markers leave gaps). It is not safe
// for concurrent use; the partition's mutex guards it.
type watermark struct {
	next    int64 // commit point: every offset below it is done
	pending []mark
}

type mark struct {
	offset int64
	done   bool
}

func newWatermark(start int64) *watermark { return &watermark{next: start} }

// add records a fetched offset as pending.
func (w *watermark) add(offset int64) {
	if len(w.pending) == 0 {
		// Nothing pending: offsets between the commit point and this one were
		// never delivered to us (gaps), so they cannot hold the commit back.
		w.next = offset
	}
	w.pending = append(w.pending, mark{offset: offset})
}

// done marks offset as having a durable outcome and advances the commit
// point over every leading done offset.
func (w *watermark) done(offset int64) {
	i := sort.Search(len(w.pending), func(i int) bool { return w.pending[i].offset >= offset })
	if i == len(w.pending) || w.pending[i].offset != offset {
		return
	}
	w.pending[i].done = true
	n := 0
	for n < len(w.pending) && w.pending[n].done {
		n++
	}
	if n == 0 {
		return
	}
	w.next = w.pending[n-1].offset + 1
	// Shift down rather than reslicing forward, so the backing array is
	// reused and memory stays bounded by the in-flight limit.
	k := copy(w.pending, w.pending[n:])
	w.pending = w.pending[:k]
	if k > 0 {
		w.next = w.pending[0].offset
	}
}

// commitPoint returns the offset to commit: the next offset to consume.
func (w *watermark) commitPoint() int64 { return w.next }

// outstanding returns how many fetched offsets are not yet done.
func (w *watermark) outstanding() int { return len(w.pending) }
