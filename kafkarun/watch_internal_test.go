package kafkarun

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	metadataAPI "github.com/segmentio/kafka-go/protocol/metadata"
)

// metadataOnly answers every request with its metadata response.
type metadataOnly struct{ res *metadataAPI.Response }

func (m metadataOnly) RoundTrip(context.Context, net.Addr, protocol.Message) (protocol.Message, error) {
	return m.res, nil
}

// TestPartitionCountsErrors: a missing topic counts 0 partitions, which
// changes the subscription; any other error of a topic's (one being
// created, one not authorized) fails the read, which changes nothing, so a
// passing state of the cluster does not make the group leave and join.
func TestPartitionCountsErrors(t *testing.T) {
	topic := func(name string, code kafka.Error, parts int) metadataAPI.ResponseTopic {
		return metadataAPI.ResponseTopic{Name: name, ErrorCode: int16(code), Partitions: make([]metadataAPI.ResponsePartition, parts)}
	}
	read := func(ts ...metadataAPI.ResponseTopic) (map[string]int, error) {
		return partitionCounts(context.Background(), metadataOnly{&metadataAPI.Response{Topics: ts}}, kafka.TCP("k:9092"), []string{"a", "b"})
	}
	counts, err := read(topic("a", 0, 3), topic("b", kafka.UnknownTopicOrPartition, 0))
	if err != nil || counts["a"] != 3 || counts["b"] != 0 || len(counts) != 2 {
		t.Fatalf("missing topic: %v %v", counts, err)
	}
	for _, code := range []kafka.Error{kafka.LeaderNotAvailable, kafka.TopicAuthorizationFailed} {
		if _, err := read(topic("a", 0, 3), topic("b", code, 0)); !errors.Is(err, code) {
			t.Errorf("topic error %v: read gave %v", code, err)
		}
	}
}
