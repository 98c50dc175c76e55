package worker_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/dlq"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/topics"
)

// limitedPublisher is a broker whose topics take records up to a size
// each, refusing larger ones for good as kafkarun.Producer reports it; what
// it takes, it records as publisher does.
type limitedPublisher struct {
	publisher
	limit map[string]int // topic → max record size; absent = any
}

func (p *limitedPublisher) Publish(ctx context.Context, msgs ...queue.Message) error {
	for _, m := range msgs {
		if l, ok := p.limit[m.Topic]; ok && m.Size() > l {
			return failure.Perm(failure.ReasonTooLarge, errors.New("[10] Message Size Too Large"))
		}
	}
	return p.publisher.Publish(ctx, msgs...)
}

// A retry record the broker refuses for good used to be returned as an
// error, so the runtime retried the record for ever and its partition
// stood still. Now it is the notification's permanent failure: dead-
// lettered with reason too_large, the key failed, the record acknowledged.
// A DLQ topic that refuses the DLQ record whole still gets it, cut down.
func TestRefusedRetryIsDeadLettered(t *testing.T) {
	transient := failure.Retry(failure.ReasonUnavailable, errors.New("503"))
	for _, tc := range []struct {
		name     string
		dlqLimit int // 0 = none
	}{{"retry topic refuses", 0}, {"retry topic and DLQ refuse", 600}} {
		t.Run(tc.name, func(t *testing.T) {
			store := dedupe.NewMemory(dedupe.Options{})
			p := &limitedPublisher{limit: map[string]int{topics.Retry(notification.SMS): 100}}
			if tc.dlqLimit > 0 {
				p.limit[topics.DLQ] = tc.dlqLimit
			}
			w := newWorker(t, &sender{script: []error{transient, transient, transient}}, renderer{}, store, p, "w1")
			n := note(0)
			n.Data = notification.DataOf(map[string]string{"note": strings.Repeat("<", 2000)})
			m := record(t, n)
			if err := w.Handle(context.Background(), m); err != nil {
				t.Fatalf("Handle: %v, want the record acknowledged", err)
			}
			if got := p.on(topics.Retry(notification.SMS)); len(got) != 0 {
				t.Errorf("%d retry records written", len(got))
			}
			d := p.on(topics.DLQ)
			if len(d) != 1 {
				t.Fatalf("%d DLQ records, want 1", len(d))
			}
			if r, c := string(d[0].Header(dlq.HeaderReason)), string(d[0].Header(dlq.HeaderClass)); r != "too_large" || c != "permanent" {
				t.Errorf("DLQ reason %q class %q, want too_large permanent (%s)", r, c, d[0].Header(dlq.HeaderError))
			}
			if !strings.Contains(string(d[0].Header(dlq.HeaderError)), "503") {
				t.Errorf("DLQ error %q does not say why the send had failed", d[0].Header(dlq.HeaderError))
			}
			trunc := string(d[0].Header(dlq.HeaderTruncated))
			switch {
			case tc.dlqLimit == 0 && (trunc != "" || string(d[0].Value) != string(m.Value)):
				t.Errorf("DLQ value %d of %d bytes, truncated %q; want it whole", len(d[0].Value), len(m.Value), trunc)
			case tc.dlqLimit > 0 && (trunc != strconv.Itoa(len(m.Value)) || d[0].Size() > tc.dlqLimit):
				t.Errorf("DLQ record of %d bytes, truncated %q; want it cut under %d with the original length %d", d[0].Size(), trunc, tc.dlqLimit, len(m.Value))
			}
			if c, _ := store.Get(context.Background(), n.ID); c.State != dedupe.StateFailed {
				t.Errorf("key state %q, want failed", c.State)
			}
		})
	}
}

// A publish failure that may pass (the broker unreachable) is still
// returned, so the runtime keeps the record and tries again.
func TestRetryPublishOutageIsRetried(t *testing.T) {
	transient := failure.Retry(failure.ReasonUnavailable, errors.New("503"))
	p := &publisher{fail: errors.New("dial tcp: connection refused")}
	w := newWorker(t, &sender{script: []error{transient, transient, transient}}, renderer{}, dedupe.NewMemory(dedupe.Options{}), p, "w1")
	if err := w.Handle(context.Background(), record(t, note(0))); err == nil {
		t.Fatal("Handle acknowledged a record whose retry could not be written")
	}
}
