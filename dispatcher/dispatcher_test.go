package dispatcher_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/gymhq/herald/dispatcher"
	"github.com/gymhq/herald/dlq"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/internal/logtest"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/topics"
)

type plan []notification.Notification

func (p plan) PlanEvent(context.Context, []byte) (*dispatcher.EventPlan, error) {
	return &dispatcher.EventPlan{Notifications: p}, nil
}

// broker refuses, for good, records for the topics in refuse; with down
// set, every publish fails as an unreachable broker does.
type broker struct {
	mu     sync.Mutex
	refuse map[string]bool
	down   bool
	got    []queue.Message
}

func (b *broker) Publish(_ context.Context, msgs ...queue.Message) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down {
		return errors.New("dial tcp: connection refused")
	}
	var refused error
	for _, m := range msgs {
		if b.refuse[m.Topic] {
			refused = failure.Perm(failure.ReasonTooLarge, errors.New("[10] Message Size Too Large"))
			continue
		}
		b.got = append(b.got, m)
	}
	return refused
}

func (b *broker) on(topic string) []queue.Message {
	var out []queue.Message
	for _, m := range b.got {
		if m.Topic == topic {
			out = append(out, m)
		}
	}
	return out
}

func notificationFor(ch notification.Channel, note int) notification.Notification {
	n := notification.Notification{EventID: "evt_1", EventType: "gym.booking.confirmed", Template: "gym.booking.confirmed",
		Channel: ch, Locale: "en", RecipientID: "mem_1", To: "x" + string(ch), CreatedAt: time.Now(),
		Data: notification.DataOf(map[string]string{"note": strings.Repeat("<", note)})}
	n.ID = notification.NewID(n.EventID, n.Template, n.Channel, n.RecipientID, n.To)
	return n
}

// An event with a notification that can never be written is acknowledged:
// its other notifications are published, the event itself goes to the DLQ
// with reason too_large, and only an outage is returned for the runtime to
// retry. Before, the error was returned in every case and the event was
// retried for ever.
func TestRefusedNotificationDeadLettersTheEvent(t *testing.T) {
	ok := notificationFor(notification.Email, 10)
	tooBig := notificationFor(notification.Push, notification.MaxEncodedSize)
	fits := notificationFor(notification.Push, 10)
	// Held by the scheduler (due tomorrow): its record carries the JSON
	// form, under the same limit.
	heldBig, heldFits := tooBig, fits
	heldBig.DueAt = time.Now().Add(24 * time.Hour)
	heldFits.DueAt = heldBig.DueAt
	for _, tc := range []struct {
		name      string
		plan      plan
		refuse    string // a topic the broker refuses
		down      bool
		wantErr   bool
		published int
		scheduled int
		dead      bool
	}{
		{name: "all written", plan: plan{ok, fits}, published: 2},
		{name: "over the notification limit", plan: plan{ok, tooBig}, published: 1, dead: true},
		{name: "held", plan: plan{ok, heldFits}, published: 1, scheduled: 1},
		{name: "held over the notification limit", plan: plan{ok, heldBig}, published: 1, dead: true},
		{name: "refused by the broker", plan: plan{ok, fits}, refuse: topics.Channel(notification.Push), published: 1, dead: true},
		{name: "broker down", plan: plan{ok, fits}, down: true, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &broker{refuse: map[string]bool{tc.refuse: true}, down: tc.down}
			m := obs.NewMetrics()
			log, logs := logtest.Observed()
			d := &dispatcher.Dispatcher{Planner: tc.plan, Publisher: b, Logger: log, Metrics: m}
			src := &queue.Message{Topic: "gym.bookings.v1", Partition: 2, Offset: 9, Key: []byte("cls_1"), Value: []byte(`{"id":"evt_1"}`)}
			err := d.Handle(context.Background(), src)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Handle: %v, want error %v", err, tc.wantErr)
			}
			published := len(b.on(topics.Channel(notification.Email))) + len(b.on(topics.Channel(notification.Push)))
			if published != tc.published {
				t.Errorf("%d notifications published, want %d", published, tc.published)
			}
			if scheduled := len(b.on(topics.Schedule)); scheduled != tc.scheduled {
				t.Errorf("%d scheduler records, want %d", scheduled, tc.scheduled)
			}
			dead := b.on(topics.DLQ)
			if lines := logtest.Count(logtest.Outcomes(t, logs), obs.OutcomeDeadLettered); lines != len(dead) {
				t.Errorf("%d dead-lettered outcome lines, want one per DLQ record (%d)", lines, len(dead))
			}
			if !tc.dead {
				if len(dead) != 0 {
					t.Errorf("%d DLQ records, want none", len(dead))
				}
				return
			}
			if len(dead) != 1 {
				t.Fatalf("%d DLQ records, want 1", len(dead))
			}
			e, err := dlq.Decode(&dead[0])
			if err != nil {
				t.Fatal(err)
			}
			if e.Stage != "dispatcher" || e.Reason != "too_large" || e.Class != "permanent" || string(e.Value) != string(src.Value) || e.SourceOffset != 9 {
				t.Errorf("DLQ entry %+v", e)
			}
		})
	}
}

// Every notification published for an event carries the event's own
// headers (trace context, the producer's) and then herald-event-id; the
// event's notifications share one header slice.
func TestNotificationsCarryTheEventsHeaders(t *testing.T) {
	b := &broker{}
	d := &dispatcher.Dispatcher{Planner: plan{notificationFor(notification.Email, 1), notificationFor(notification.Push, 1),
		notificationFor(notification.SMS, 1)}, Publisher: b, Logger: zap.NewNop(), Metrics: obs.NewMetrics()}
	src := &queue.Message{Topic: "gym.bookings.v1", Value: []byte(`{"id":"evt_1"}`), Headers: []queue.Header{
		{Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")}, {Key: "source", Value: []byte("bookings")}}}
	if err := d.Handle(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	if len(b.got) != 3 {
		t.Fatalf("%d records published, want 3", len(b.got))
	}
	for _, m := range b.got {
		var got []string
		for _, h := range m.Headers {
			got = append(got, h.Key+"="+string(h.Value))
		}
		want := []string{"traceparent=" + string(src.Headers[0].Value), "source=bookings", dispatcher.HeaderEventID + "=evt_1"}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s record's headers %q, want %q", m.Topic, got, want)
		}
	}
}

// A dead-lettered event whose id can be read carries it: the DLQ record's
// herald-event-id header (herald trace finds it by that) and the log line's
// event_id. One that is not even JSON carries neither. Before, neither
// did, so grepping the logs for the event missed the line (an outside
// tester's find).
func TestDeadLetteredEventCarriesItsID(t *testing.T) {
	invalid := strings.Replace(string(readSample(t, "gym.class.reminder", "member-with-push-en.json")), `"starts_at"`, `"begins_at"`, 1)
	for _, tc := range []struct{ name, value, id string }{
		{"invalid", invalid, "evt_01JDB0C4HT"},
		{"not JSON", `{"id":"evt_1"`, ""},
		{"id too long", `{"id":"` + strings.Repeat("x", 300) + `"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &broker{}
			log, logs := logtest.Observed()
			d := &dispatcher.Dispatcher{Planner: planner(t, time.Now), Publisher: b, Logger: log, Metrics: obs.NewMetrics()}
			if err := d.Handle(context.Background(), &queue.Message{Topic: "gym.bookings.v1", Value: []byte(tc.value)}); err != nil {
				t.Fatal(err)
			}
			dead := b.on(topics.DLQ)
			if len(dead) != 1 {
				t.Fatalf("%d DLQ records", len(dead))
			}
			if h := dead[0].Header(dlq.HeaderEventID); string(h) != tc.id || (tc.id == "") != (h == nil) {
				t.Errorf("herald-event-id %q, want %q", h, tc.id)
			}
			lines := logs.FilterMessage("event dead-lettered").All()
			if len(lines) != 1 || lines[0].ContextMap()["event_id"] != tc.id {
				t.Errorf("log lines %+v, want event_id %q", lines, tc.id)
			}
		})
	}
}

// gatherer is a broker that can hold a write for callers about to publish
// (queue.Gatherer); it records what the dispatcher tells it.
type gatherer struct {
	broker
	said []string
}

type expectedKey struct{}

func (g *gatherer) Expect(ctx context.Context) (context.Context, func()) {
	g.said = append(g.said, "expect")
	return context.WithValue(ctx, expectedKey{}, true), func() { g.said = append(g.said, "done") }
}

func (g *gatherer) Publish(ctx context.Context, msgs ...queue.Message) error {
	if ctx.Value(expectedKey{}) == true {
		g.said = append(g.said, "publish")
	} else {
		g.said = append(g.said, "publish-not-on-the-expected-context")
	}
	return g.broker.Publish(ctx, msgs...)
}

// A dispatcher tells a publisher that gathers that its handler will
// publish, and when it has, so that the events fetched together are
// written in one produce request rather than the first alone and the rest
// behind it; an event that publishes nothing releases it too.
func TestDispatcherTellsThePublisherItWillPublish(t *testing.T) {
	g := &gatherer{}
	d := &dispatcher.Dispatcher{Planner: plan{notificationFor(notification.Email, 1)}, Publisher: g, Logger: zap.NewNop(), Metrics: obs.NewMetrics()}
	if err := d.Handle(context.Background(), &queue.Message{Topic: "gym.bookings.v1", Value: []byte(`{"id":"evt_1"}`)}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(g.said, " "); got != "expect publish done" {
		t.Errorf("the dispatcher said %q, want %q", got, "expect publish done")
	}
	g.said = nil
	d.Planner = plan{}
	if err := d.Handle(context.Background(), &queue.Message{Topic: "gym.bookings.v1", Value: []byte(`{"id":"evt_2"}`)}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(g.said, " "); got != "expect done" {
		t.Errorf("for an event with nothing to publish the dispatcher said %q, want %q", got, "expect done")
	}
}
