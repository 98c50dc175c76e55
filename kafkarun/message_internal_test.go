package kafkarun

import (
	"bytes"
	"testing"
	"time"

	"github.com/segmentio/kafka-go/protocol"
)

// TestMessageCopiesKeyAndValue: message reads a record's key and value out
// of the response as protocol.ReadAll does, nil staying nil and empty
// staying empty, into slices that do not share room: appending to the key
// leaves the value alone.
func TestMessageCopiesKeyAndValue(t *testing.T) {
	for _, tc := range []struct {
		name       string
		key, value []byte
	}{
		{"both", []byte("member-1"), []byte(`{"id":"e1"}`)},
		{"no key", nil, []byte("v")},
		{"tombstone", []byte("k"), nil},
		{"neither", nil, nil},
		{"empty key", []byte{}, []byte("v")},
		{"empty value", []byte("k"), []byte{}},
		{"both empty", []byte{}, []byte{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at := time.UnixMilli(1700000000000)
			rec := &protocol.Record{Offset: 7, Time: at, Key: protocol.NewBytes(tc.key), Value: protocol.NewBytes(tc.value)}
			m, err := message(topicPartition{"t", 3}, rec)
			if err != nil {
				t.Fatal(err)
			}
			if m.Topic != "t" || m.Partition != 3 || m.Offset != 7 || !m.Time.Equal(at) {
				t.Errorf("message at %s/%d@%d %v, want t/3@7 %v", m.Topic, m.Partition, m.Offset, m.Time, at)
			}
			for _, f := range []struct {
				what      string
				got, want []byte
			}{{"key", m.Key, tc.key}, {"value", m.Value, tc.value}} {
				if (f.got == nil) != (f.want == nil) || !bytes.Equal(f.got, f.want) {
					t.Errorf("%s = %q (nil %v), want %q (nil %v)", f.what, f.got, f.got == nil, f.want, f.want == nil)
				}
			}
			if m.Key != nil && m.Value != nil {
				value := string(m.Value)
				_ = append(m.Key, "XXXXXXXX"...)
				if string(m.Value) != value {
					t.Errorf("appending to the key changed the value to %q", m.Value)
				}
			}
		})
	}
}
