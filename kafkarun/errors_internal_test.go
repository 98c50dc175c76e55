package kafkarun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/gymhq/herald/failure"
)

// classifyPublish: refusals about the record are permanent with a reason;
// everything else stays retryable (unclassified).
func TestClassifyPublish(t *testing.T) {
	tests := []struct {
		err    error
		class  failure.Class
		reason failure.Reason
	}{
		{kafka.MessageTooLargeError{}, failure.Permanent, failure.ReasonTooLarge},
		{kafka.MessageSizeTooLarge, failure.Permanent, failure.ReasonTooLarge},
		{fmt.Errorf("wrapped: %w", kafka.MessageSizeTooLarge), failure.Permanent, failure.ReasonTooLarge},
		{kafka.RecordListTooLarge, failure.Permanent, failure.ReasonTooLarge},
		{kafka.InvalidRecord, failure.Permanent, failure.ReasonInvalid},
		{kafka.InvalidTimestamp, failure.Permanent, failure.ReasonInvalid},
		{kafka.InvalidMessage, failure.Retryable, failure.ReasonUnknown}, // CORRUPT_MESSAGE: in transit
		{kafka.UnknownTopicOrPartition, failure.Retryable, failure.ReasonUnknown},
		{kafka.TopicAuthorizationFailed, failure.Retryable, failure.ReasonUnknown},
		{kafka.NotEnoughReplicas, failure.Retryable, failure.ReasonUnknown},
		{context.DeadlineExceeded, failure.Retryable, failure.ReasonUnknown},
		{io.ErrUnexpectedEOF, failure.Retryable, failure.ReasonUnknown},
		{errors.New("anything else"), failure.Retryable, failure.ReasonUnknown},
	}
	for _, tt := range tests {
		got := classifyPublish(tt.err)
		if failure.ClassOf(got) != tt.class || failure.ReasonOf(got) != tt.reason {
			t.Errorf("%v: class %v reason %s, want %v %s", tt.err, failure.ClassOf(got), failure.ReasonOf(got), tt.class, tt.reason)
		}
		if !errors.Is(got, kafka.MessageSizeTooLarge) && !errors.Is(got, tt.err) {
			t.Errorf("%v: the classified error does not wrap it", tt.err)
		}
	}
	if classifyPublish(nil) != nil {
		t.Error("nil is not an error")
	}
}
