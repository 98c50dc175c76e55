package dispatcher_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gymhq/herald/dispatcher"
	"github.com/gymhq/herald/dlq"
	"github.com/gymhq/herald/internal/logtest"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/topics"
)

// recorder is a queue.Publisher that keeps what it is given.
type recorder struct{ msgs []queue.Message }

func (r *recorder) Publish(_ context.Context, msgs ...queue.Message) error {
	r.msgs = append(r.msgs, msgs...)
	return nil
}

// One recipient's bad address costs that one message: everybody else, and
// the same person on their other channels and tokens, is still told, and
// the refused message is dead-lettered naming only the recipient id.
// inapp is the in-app channel: a person's feed is addressed by their id,
// so a bad email or phone leaves it reachable.
const inapp notification.Channel = "inapp"

func TestDispatchRefusesOneRecipient(t *testing.T) {
	cancelled := readSample(t, "gym.class.cancelled", "three-attendees.json")
	confirmed := readSample(t, "gym.booking.confirmed", "member-en.json")
	reminder := readSample(t, "gym.class.reminder", "member-with-push-en.json")
	swap := func(b []byte, old, new string) []byte {
		t.Helper()
		if !bytes.Contains(b, []byte(old)) {
			t.Fatalf("sample has no %s", old)
		}
		return bytes.Replace(b, []byte(old), []byte(new), 1)
	}
	type sent struct {
		ch notification.Channel
		to string
	}
	tests := []struct {
		name    string
		raw     []byte
		secrets []string // what must appear nowhere in the DLQ records or logs
		want    []sent   // every notification published, in order
		refused []string // "channel recipient reason" of each DLQ record
	}{
		{
			name:    "second attendee's phone is not E.164",
			raw:     swap(cancelled, "+34600987654", "555-1234"),
			secrets: []string{"555-1234", "Marta", "Ruiz", "marta.ruiz@example.com"},
			want: []sent{
				{notification.Email, "carlos.pena@example.com"}, {notification.SMS, "+34600123456"},
				{notification.Email, "marta.ruiz@example.com"},
				{notification.Email, "james.oconnor@example.com"}, {notification.SMS, "+447700900789"},
				{inapp, "mem_carlos"}, {inapp, "mem_marta"}, {inapp, "mem_james"},
			},
			refused: []string{"sms mem_marta invalid_address"},
		},
		{
			name:    "second attendee's email is malformed",
			raw:     swap(cancelled, "marta.ruiz@example.com", "marta at example"),
			secrets: []string{"marta at example", "Marta", "+34600987654"},
			want: []sent{
				{notification.Email, "carlos.pena@example.com"}, {notification.SMS, "+34600123456"},
				{notification.SMS, "+34600987654"},
				{notification.Email, "james.oconnor@example.com"}, {notification.SMS, "+447700900789"},
				{inapp, "mem_carlos"}, {inapp, "mem_marta"}, {inapp, "mem_james"},
			},
			refused: []string{"email mem_marta invalid_address"},
		},
		{
			name:    "premium-rate phone",
			raw:     swap(cancelled, "+447700900789", "+19005550100"),
			secrets: []string{"+19005550100", "James", "O'Connor", "james.oconnor@example.com"},
			want: []sent{
				{notification.Email, "carlos.pena@example.com"}, {notification.SMS, "+34600123456"},
				{notification.Email, "marta.ruiz@example.com"}, {notification.SMS, "+34600987654"},
				{notification.Email, "james.oconnor@example.com"},
				{inapp, "mem_carlos"}, {inapp, "mem_marta"}, {inapp, "mem_james"},
			},
			refused: []string{"sms mem_james destination_denied"},
		},
		{
			name: "every address of one attendee is bad",
			raw:  swap(swap(cancelled, "+34600987654", "0600987654"), "marta.ruiz@example.com", "Marta <marta.ruiz@example.com>"),
			want: []sent{
				{notification.Email, "carlos.pena@example.com"}, {notification.SMS, "+34600123456"},
				{notification.Email, "james.oconnor@example.com"}, {notification.SMS, "+447700900789"},
				{inapp, "mem_carlos"}, {inapp, "mem_marta"}, {inapp, "mem_james"},
			},
			secrets: []string{"0600987654", "Marta", "marta.ruiz"},
			refused: []string{"email mem_marta invalid_address", "sms mem_marta invalid_address"},
		},
		{
			name:    "one bad push token among two",
			raw:     swap(confirmed, `["fcm_tok_emma_iphone"]`, `["fcm tok with spaces", "fcm_tok_emma_iphone"]`),
			secrets: []string{"fcm tok with spaces", "Emma", "Clarke", "+447700900123"},
			want:    []sent{{notification.Email, "emma.clarke@example.com"}, {notification.Push, "fcm_tok_emma_iphone"}, {inapp, "mem_emma"}},
			refused: []string{"push mem_emma invalid_address"},
		},
		{
			// The SMS fallback applies when push cannot reach the member: a
			// malformed only token is no way to reach them.
			name:    "reminder falls back to SMS when the only token is malformed",
			raw:     swap(reminder, `["fcm_tok_emma_iphone"]`, `["bad\ttoken"]`),
			secrets: []string{"bad\ttoken", "Emma"},
			want:    []sent{{notification.SMS, "+447700900123"}, {inapp, "mem_emma"}},
			refused: []string{"push mem_emma invalid_address"},
		},
	}
	// A fixed midday in the members' zone (Europe/London), after the
	// samples' classes. On the wall clock the SMS fallback fell in the
	// default quiet hours (22:00–07:00) at night and went to the schedule
	// topic instead: this test failed from 22:00 UTC.
	midday := func() time.Time { return time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC) }
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, logs := logtest.Observed()
			pub := &recorder{}
			m := obs.NewMetrics()
			d := &dispatcher.Dispatcher{Planner: planner(t, midday), Publisher: pub, Logger: log, Metrics: m}
			src := &queue.Message{Topic: "gym.bookings.v1", Partition: 2, Offset: 41, Key: []byte("cls"), Value: tt.raw}
			if err := d.Handle(context.Background(), src); err != nil {
				t.Fatalf("Handle: %v", err)
			}

			var got []sent
			var refused []string
			var dead []queue.Message
			for _, msg := range pub.msgs {
				if msg.Topic == topics.DLQ {
					dead = append(dead, msg)
					continue
				}
				if msg.Topic == topics.Schedule {
					continue // the class's cancellation withdraws its reminders (schedule_test.go)
				}
				n, err := notification.Decode(msg.Value)
				if err != nil {
					t.Fatal(err)
				}
				if msg.Topic != topics.Channel(n.Channel) {
					t.Errorf("%s notification published to %s", n.Channel, msg.Topic)
				}
				got = append(got, sent{n.Channel, n.To})
			}
			if !equal(got, tt.want) {
				t.Errorf("published %v, want %v", got, tt.want)
			}
			for _, msg := range dead {
				e, err := dlq.Decode(&msg)
				if err != nil {
					t.Fatalf("DLQ record does not decode: %v", err)
				}
				refused = append(refused, e.Channel+" "+e.RecipientID+" "+e.Reason)
				if e.Stage != "dispatcher" || e.Class != "permanent" || e.SourceTopic != "gym.bookings.v1" || e.SourceOffset != 41 || e.EventID == "" {
					t.Errorf("DLQ entry %+v: want stage dispatcher, class permanent, the source record and the event id", e)
				}
				if string(msg.Key) != e.RecipientID {
					t.Errorf("DLQ key %q, want the recipient id", msg.Key)
				}
				var v dlq.Refused
				if err := json.Unmarshal(e.Value, &v); err != nil || v.RecipientID != e.RecipientID || v.Channel != e.Channel || v.EventID != e.EventID {
					t.Errorf("DLQ value %s (%v) does not describe the refusal", e.Value, err)
				}
				if _, err := dlq.Replay(e, "gym.bookings.v1", time.Now()); !errors.Is(err, dlq.ErrNotReplayable) || !strings.Contains(err.Error(), "correct it at the source (the person's address") {
					t.Errorf("Replay of a refusal = %v, want ErrNotReplayable saying what to do", err)
				}
				all := string(msg.Key) + string(msg.Value)
				for _, h := range msg.Headers {
					all += h.Key + "=" + string(h.Value) + "\n"
				}
				for _, s := range tt.secrets {
					if strings.Contains(all, s) {
						t.Errorf("DLQ record carries %q about the recipient:\n%s", s, all)
					}
				}
			}
			if strings.Join(refused, ", ") != strings.Join(tt.refused, ", ") {
				t.Errorf("refused %q, want %q", refused, tt.refused)
			}
			for _, e := range logs.All() {
				line := e.Message
				for _, f := range e.Context {
					line += " " + f.Key + "=" + f.String
					if f.Interface != nil {
						if err, ok := f.Interface.(error); ok {
							line += err.Error()
						}
					}
				}
				for _, s := range tt.secrets {
					if strings.Contains(line, s) {
						t.Errorf("log line carries %q about the recipient: %s", s, line)
					}
				}
			}
			if n := logs.FilterMessage("recipient address refused").Len(); n != len(tt.refused) {
				t.Errorf("%d refusal log lines, want %d", n, len(tt.refused))
			}
			if n := logtest.Count(logtest.Outcomes(t, logs), obs.OutcomeRefused); n != len(tt.refused) {
				t.Errorf("%d refused outcome lines, want %d", n, len(tt.refused))
			}
			for _, r := range tt.refused {
				f := strings.Fields(r)
				if got := testutil.ToFloat64(m.Notifications.WithLabelValues(f[0], obs.OutcomeRefused, f[2])); got < 1 {
					t.Errorf("herald_notifications_total{channel=%s,outcome=refused,reason=%s} = %v", f[0], f[2], got)
				}
			}
			if got := testutil.ToFloat64(m.Events.WithLabelValues(obs.EventDispatched)); got != 1 {
				t.Errorf("events dispatched = %v, want 1", got)
			}
		})
	}
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// What really makes the event unusable still dead-letters it whole.
func TestDispatchEventLevelStillStrict(t *testing.T) {
	cancelled := readSample(t, "gym.class.cancelled", "three-attendees.json")
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"class without start", bytes.Replace(cancelled, []byte(`"starts_at"`), []byte(`"start"`), 1)},
		{"attendee without id", bytes.Replace(cancelled, []byte(`"id": "mem_marta"`), []byte(`"member": "mem_marta"`), 1)},
		{"no reason", bytes.Replace(cancelled, []byte(`"reason"`), []byte(`"why"`), 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub := &recorder{}
			d := &dispatcher.Dispatcher{Planner: planner(t, time.Now), Publisher: pub, Logger: zap.NewNop(), Metrics: obs.NewMetrics()}
			if err := d.Handle(context.Background(), &queue.Message{Topic: "gym.bookings.v1", Value: tc.raw}); err != nil {
				t.Fatal(err)
			}
			if len(pub.msgs) != 1 || pub.msgs[0].Topic != topics.DLQ {
				t.Fatalf("published %d records, want the event alone to the DLQ", len(pub.msgs))
			}
			e, err := dlq.Decode(&pub.msgs[0])
			if err != nil || e.RecipientID != "" || e.Reason != "invalid" || !bytes.Equal(e.Value, tc.raw) {
				t.Errorf("DLQ entry %+v, %v: want the whole event, reason invalid, no recipient", e, err)
			}
		})
	}
}

// A message planned further ahead than Planner.MaxAhead is dead-lettered,
// and its log line says so: it was logged as "recipient address refused",
// pointing an operator at the wrong cause (a second outside tester, with
// 1,182 such lines).
func TestTooFarAheadIsNotAnAddressRefusal(t *testing.T) {
	loc, _ := time.LoadLocation("Europe/London")
	p := planner(t, func() time.Time { return time.Date(2026, 12, 4, 23, 30, 0, 0, loc) })
	p.MaxAhead = time.Hour // the reminder's push waits for 07:00, quiet hours
	core, logs := observer.New(zap.DebugLevel)
	pub := &recorder{}
	d := &dispatcher.Dispatcher{Planner: p, Publisher: pub, Logger: zap.New(core), Metrics: obs.NewMetrics()}
	raw := readSample(t, "gym.class.reminder", "member-with-push-en.json")
	if err := d.Handle(context.Background(), &queue.Message{Topic: "gym.bookings.v1", Value: raw}); err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, msg := range pub.msgs {
		if msg.Topic != topics.DLQ {
			continue
		}
		e, err := dlq.Decode(&msg)
		if err != nil {
			t.Fatal(err)
		}
		reasons = append(reasons, e.Channel+" "+e.Reason+" "+e.Error)
	}
	if len(reasons) == 0 || !strings.Contains(reasons[0], "ahead") {
		t.Fatalf("dead letters %q, want the push refused for being too far ahead", reasons)
	}
	if n := logs.FilterMessage("recipient address refused").Len(); n != 0 {
		t.Errorf("%d lines say the address was refused; it was the schedule", n)
	}
	if n := logs.FilterMessage("message scheduled too far ahead refused").Len(); n != len(reasons) {
		t.Errorf("%d lines say the message was too far ahead, want %d", n, len(reasons))
	}
}
