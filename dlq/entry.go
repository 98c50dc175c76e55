package dlq

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/queue"
)

// Entry is a DLQ record read back: the herald-* headers decoded and checked,
// plus the original key, value and other headers.
type Entry struct {
	// Where the DLQ record itself is.
	Partition int
	Offset    int64

	Reason, Class, Error, Stage, Channel string
	Attempts                             int
	FirstFailure, LastFailure            time.Time
	SourceTopic                          string
	SourcePartition                      int
	SourceOffset                         int64
	EventID, NotificationID              string
	// RecipientID is set only on a per-recipient refusal (see Refusal).
	RecipientID string

	Key, Value []byte
	// Headers are the source record's own headers (herald-* removed).
	Headers []queue.Header
}

// ErrMalformed is wrapped by every Decode error.
var ErrMalformed = errors.New("malformed DLQ record")

// maxHeader bounds a header value we accept; Record writes at most
// maxErrorLen bytes of error text and short values elsewhere.
const maxHeader = 4096

// Decode reads a record from herald.dlq.v1. A record herald did not write,
// or one damaged since, is an error naming the header that is missing or
// wrong; the value itself is not checked here (it is the input that failed,
// and may be garbage by definition).
func Decode(m *queue.Message) (*Entry, error) {
	e := &Entry{Partition: m.Partition, Offset: m.Offset, Key: m.Key, Value: m.Value}
	seen := map[string]string{}
	for _, h := range m.Headers {
		if !strings.HasPrefix(h.Key, "herald-") {
			e.Headers = append(e.Headers, h)
			continue
		}
		if _, dup := seen[h.Key]; dup {
			return nil, fmt.Errorf("%w: header %s appears twice", ErrMalformed, h.Key)
		}
		if len(h.Value) > maxHeader || !utf8.Valid(h.Value) {
			return nil, fmt.Errorf("%w: header %s is not short UTF-8 text", ErrMalformed, h.Key)
		}
		seen[h.Key] = string(h.Value)
	}
	req := func(k string) (string, error) {
		v := seen[k]
		if v == "" {
			return "", fmt.Errorf("%w: header %s is missing", ErrMalformed, k)
		}
		return v, nil
	}
	var err error
	if e.Reason, err = req(HeaderReason); err != nil {
		return nil, err
	}
	if e.Class, err = req(HeaderClass); err != nil {
		return nil, err
	}
	switch e.Class {
	case "retryable", "permanent", "poison":
	default:
		return nil, fmt.Errorf("%w: header %s is %q, want retryable, permanent or poison", ErrMalformed, HeaderClass, e.Class)
	}
	if e.Stage, err = req(HeaderStage); err != nil {
		return nil, err
	}
	if e.Stage != "dispatcher" && !notification.Channel(e.Stage).Valid() {
		return nil, fmt.Errorf("%w: header %s is %q, want dispatcher or a channel (%s)", ErrMalformed, HeaderStage, e.Stage, notification.Names())
	}
	e.Channel = seen[HeaderChannel]
	if e.Stage != "dispatcher" && e.Channel != e.Stage {
		return nil, fmt.Errorf("%w: header %s is %q on a record of stage %s", ErrMalformed, HeaderChannel, e.Channel, e.Stage)
	}
	e.Error = seen[HeaderError]
	e.SourceTopic = seen[HeaderSourceTopic]
	e.EventID = seen[HeaderEventID]
	e.NotificationID = seen[HeaderNotificationID]
	e.RecipientID = seen[HeaderRecipientID]
	if v := seen[HeaderAttempts]; v != "" {
		if e.Attempts, err = strconv.Atoi(v); err != nil || e.Attempts < 0 {
			return nil, fmt.Errorf("%w: header %s is %q, want a count", ErrMalformed, HeaderAttempts, v)
		}
	}
	if v := seen[HeaderSourcePartition]; v != "" {
		if e.SourcePartition, err = strconv.Atoi(v); err != nil || e.SourcePartition < 0 {
			return nil, fmt.Errorf("%w: header %s is %q, want a partition number", ErrMalformed, HeaderSourcePartition, v)
		}
	}
	if v := seen[HeaderSourceOffset]; v != "" {
		if e.SourceOffset, err = strconv.ParseInt(v, 10, 64); err != nil || e.SourceOffset < 0 {
			return nil, fmt.Errorf("%w: header %s is %q, want an offset", ErrMalformed, HeaderSourceOffset, v)
		}
	}
	for _, t := range []struct {
		k   string
		dst *time.Time
	}{{HeaderFirstFailure, &e.FirstFailure}, {HeaderLastFailure, &e.LastFailure}} {
		v, err := req(t.k)
		if err != nil {
			return nil, err
		}
		if *t.dst, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return nil, fmt.Errorf("%w: header %s is %q, want an RFC 3339 time", ErrMalformed, t.k, v)
		}
	}
	if e.LastFailure.Before(e.FirstFailure) {
		return nil, fmt.Errorf("%w: last failure %s is before first failure %s", ErrMalformed,
			e.LastFailure.Format(time.RFC3339), e.FirstFailure.Format(time.RFC3339))
	}
	return e, nil
}
