package kafkarun

import (
	"errors"
	"fmt"

	"github.com/segmentio/kafka-go"

	"github.com/gymhq/herald/failure"
)

// classifyPublish decides, in this one place, whether a record the broker
// (or the client on its behalf) refused can ever be written. A refusal
// about the record itself is permanent: writing the same bytes again gets
// the same answer, so retrying would hold the record's partition for ever
// (issue 10: one oversize notification stopped every later event with its
// key). The caller then dead-letters the record it was handling with the
// reason, and its partition moves on.
//
// Permanent, because they are properties of the record's bytes:
//   - the client's MessageTooLargeError: the record alone exceeds the
//     producer's batch limit (queue.MaxRecordBytes);
//   - MESSAGE_TOO_LARGE and RECORD_LIST_TOO_LARGE: the broker measured the
//     batch against the topic's max.message.bytes (or segment size);
//   - INVALID_RECORD and INVALID_TIMESTAMP: the broker's validation of the
//     record (a compacted topic needs a key; a timestamp outside
//     message.timestamp.difference.max.ms) refused it.
//
// Everything else stays retryable, including errors that are permanent for
// the fleet but not for the record: an unknown topic, a refused ACL or SASL
// login, an unsupported version. Dead-lettering every record while an
// operator fixes an ACL would turn one misconfiguration into a DLQ of the
// whole stream; holding the partitions (and failing readiness) is the
// recoverable choice. CORRUPT_MESSAGE stays retryable too: it is a checksum
// failure in transit, and Kafka documents it as retriable.
//
// A broker measures batches, not records, and the producer may coalesce
// records of concurrent callers into one batch; Publish therefore writes a
// refused record again alone before it believes the refusal is about it.
func classifyPublish(err error) error {
	var big kafka.MessageTooLargeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &big),
		errors.Is(err, kafka.MessageSizeTooLarge),
		errors.Is(err, kafka.RecordListTooLarge):
		return failure.Perm(failure.ReasonTooLarge, err)
	case errors.Is(err, kafka.InvalidRecord),
		errors.Is(err, kafka.InvalidTimestamp):
		return failure.Perm(failure.ReasonInvalid, err)
	}
	return err
}

// recordRefused reports whether classifyPublish makes err permanent.
func recordRefused(err error) bool {
	return err != nil && failure.ClassOf(classifyPublish(err)) == failure.Permanent
}

// recordError names the record a permanent refusal is about, so the DLQ
// reason says which of a call's records the broker would not take.
func recordError(m *kafka.Message, err error) error {
	return classifyPublish(fmt.Errorf("record of %d bytes for %s refused: %w", recordSize(m), m.Topic, err))
}
