package notification_test

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
)

// Free text full of <, > and & is written as it is, not as six-byte
// \u003c escapes: a 200 KB note stays about 200 KB (it was 1.2 MB), and it
// decodes back unchanged.
func TestEncodeKeepsHTMLCharacters(t *testing.T) {
	n := sample()
	text := strings.Repeat("<b>&", 50_000)
	n.Data = n.Data.With(notification.Field{Key: "note", Value: text})
	b, err := notification.Encode(n)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > len(text)+1024 {
		t.Errorf("a %d-byte note encodes to %d bytes", len(text), len(b))
	}
	if bytes.Contains(b, []byte(`\u003c`)) || bytes.HasSuffix(b, []byte("\n")) {
		t.Errorf("encoding escapes HTML or ends in a newline: %.80s…", b)
	}
	got, err := notification.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Data.Get("note") != text {
		t.Error("the note changed in the round trip")
	}
}

// fill returns n with a note that makes its encoding exactly size bytes.
// The note's length is written before it as a varint, which grows from
// the empty note's one byte.
func fill(t *testing.T, n *notification.Notification, size int) *notification.Notification {
	t.Helper()
	n.Data = n.Data.With(notification.Field{Key: "note", Value: ""})
	b, err := notification.Encode(n)
	if err != nil {
		t.Fatal(err)
	}
	rest := size - (len(b) - 1) // the note's length and bytes
	l := rest - 1
	for l > 0 && len(binary.AppendUvarint(nil, uint64(l)))+l > rest {
		l--
	}
	if len(binary.AppendUvarint(nil, uint64(l)))+l != rest {
		t.Fatalf("no note makes the encoding %d bytes", size)
	}
	n.Data = n.Data.With(notification.Field{Key: "note", Value: strings.Repeat("a", l)})
	return n
}

// The limits are exact. A new notification may be MaxEncodedSize less 1
// KiB; its retry state (attempt, not_before, first_failed_at) then still
// fits MaxEncodedSize on the last retry, so a worker never refuses a retry
// record for its size; one byte more is a permanent too_large error, never
// bytes a worker would refuse.
func TestEncodeSizeEdges(t *testing.T) {
	newLimit := notification.MaxEncodedSize - 1<<10
	n := fill(t, sample(), newLimit)
	b, err := notification.Encode(n)
	if err != nil || len(b) != newLimit {
		t.Fatalf("new notification of %d bytes: %d bytes, %v", newLimit, len(b), err)
	}
	if _, err := notification.Decode(b); err != nil {
		t.Errorf("a worker refuses the largest new notification: %v", err)
	}
	retried := *n
	retried.Attempt = 99
	retried.NotBefore = time.Date(2026, 12, 31, 23, 59, 59, 999999999, time.UTC)
	retried.FirstFailedAt = retried.NotBefore
	rb, err := notification.Encode(&retried)
	if err != nil {
		t.Fatalf("its retry record: %v", err)
	}
	if _, err := notification.Decode(rb); err != nil {
		t.Errorf("a worker refuses its retry record of %d bytes: %v", len(rb), err)
	}

	over := fill(t, sample(), newLimit+1)
	if _, err := notification.Encode(over); failure.ClassOf(err) != failure.Permanent || failure.ReasonOf(err) != failure.ReasonTooLarge {
		t.Errorf("new notification of %d bytes: %v, want permanent too_large", newLimit+1, err)
	}
	old := fill(t, sample(), notification.MaxEncodedSize)
	old.Attempt = 1
	old = fill(t, old, notification.MaxEncodedSize)
	if b, err := notification.Encode(old); err != nil || len(b) != notification.MaxEncodedSize {
		t.Errorf("retried notification of %d bytes: %d, %v", notification.MaxEncodedSize, len(b), err)
	}
	old = fill(t, old, notification.MaxEncodedSize+1)
	if _, err := notification.Encode(old); failure.ReasonOf(err) != failure.ReasonTooLarge {
		t.Errorf("retried notification of %d bytes: %v, want too_large", notification.MaxEncodedSize+1, err)
	}
}
