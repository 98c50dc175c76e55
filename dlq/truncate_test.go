package dlq_test

import (
	"bytes"
	"errors"
	"strconv"
	"testing"

	"github.com/gymhq/herald/dlq"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/queue"
)

// A source record too large for the DLQ topic is kept as a prefix with its
// original length, so that writing it can succeed and the partition moves
// on; smaller ones are kept whole.
func TestRecordBoundsValue(t *testing.T) {
	err := failure.Poisoned(failure.ReasonDecode, errors.New("too big"))
	for _, n := range []int{0, 10, dlq.MaxValueSize, dlq.MaxValueSize + 1, 4 << 20} {
		src := &queue.Message{Topic: "t", Value: bytes.Repeat([]byte("x"), n)}
		rec := dlq.Record(src, err, dlq.Info{Stage: "dispatcher"})
		trunc := string(rec.Header(dlq.HeaderTruncated))
		switch {
		case n <= dlq.MaxValueSize && (len(rec.Value) != n || trunc != ""):
			t.Errorf("%d bytes: kept %d, truncated header %q", n, len(rec.Value), trunc)
		case n > dlq.MaxValueSize && (len(rec.Value) != dlq.MaxValueSize || trunc != strconv.Itoa(n)):
			t.Errorf("%d bytes: kept %d, truncated header %q", n, len(rec.Value), trunc)
		}
	}
}
