package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/gymhq/herald/dlq"
	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/internal/poll"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/sim"
	"github.com/gymhq/herald/topics"
)

// TestBadInputEverywhere feeds the running fleet bad input wherever input
// enters — booking events, and notification records on the channel topics
// — each immediately before a good record on the same partition. Every bad
// record must land in herald.dlq.v1 once, with the right stage and reason,
// and every good record must still be delivered exactly once. (Bad
// configuration is covered by TestRunBadConfig and config's tests.)
func TestBadInputEverywhere(t *testing.T) {
	if testing.Short() {
		t.Skip("fleet")
	}
	redis := redistest.Start(t)
	env, _ := newTestEnv(t, 3, redis)
	startFleet(t, env)
	poll.Until(t, 30*time.Second, "the fleet ready (its topics created)", func() bool { return env.fleet.ready(context.Background()) == nil })

	g := sim.New(sim.Options{Seed: 29, Members: 40, Prefix: "bad"})
	// editEvent returns a fresh event of type typ with edit applied to its
	// JSON form.
	editEvent := func(typ string, edit func(ev map[string]any)) []byte {
		var ev map[string]any
		if err := json.Unmarshal(g.Make(typ).Value, &ev); err != nil {
			t.Fatal(err)
		}
		edit(ev)
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	member := func(ev map[string]any) map[string]any {
		return ev["data"].(map[string]any)["member"].(map[string]any)
	}
	// A notification of an event that is never published, to mutate.
	spare := newWorkload(t, nil, 0)
	var smsN, pushN notification.Notification
	for i := 0; i < 50 && (smsN.ID == "" || pushN.ID == ""); i++ {
		planned, err := spare.planner.Plan(g.Make("gym.waitlist.promoted").Value)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range planned {
			switch {
			case n.Channel == notification.SMS && smsN.ID == "":
				smsN = n
			case n.Channel == notification.Push && pushN.ID == "":
				pushN = n
			}
		}
	}
	if smsN.ID == "" || pushN.ID == "" {
		t.Fatal("waitlist promotions planned no SMS or no push")
	}
	encode := func(n notification.Notification, edit func(n *notification.Notification)) []byte {
		edit(&n)
		b, err := notification.Encode(&n)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	cases := []struct {
		name   string
		topic  string // "" = the events topic
		value  []byte
		stage  string
		reason string // "" = not dead-lettered (skipped)
	}{
		{"event: not JSON", "", []byte(`{"specversion":"1.0",`), "dispatcher", "decode"},
		{"event: empty", "", []byte{}, "dispatcher", "decode"},
		{"event: JSON array", "", []byte(`[{"specversion":"1.0"}]`), "dispatcher", "decode"},
		{"event: bad UTF-8", "", []byte("{\"specversion\":\"1.0\",\"id\":\"\xff\xfe\"}"), "dispatcher", "decode"},
		{"event: missing id", "", editEvent("gym.booking.confirmed", func(ev map[string]any) { delete(ev, "id") }), "dispatcher", "invalid"},
		{"event: wrong specversion", "", editEvent("gym.booking.confirmed", func(ev map[string]any) { ev["specversion"] = "0.3" }), "dispatcher", "invalid"},
		// A bad address is refused per recipient, not per event:
		// TestOneBadRecipient.
		{"event: member without id", "", editEvent("gym.booking.confirmed", func(ev map[string]any) { delete(member(ev), "id") }), "dispatcher", "invalid"},
		{"event: preference not a boolean", "", editEvent("gym.waitlist.promoted", func(ev map[string]any) {
			member(ev)["preferences"] = map[string]any{"sms": "false"}
		}), "dispatcher", "invalid"},
		{"event: data missing what a template needs", "", editEvent("gym.booking.confirmed", func(ev map[string]any) {
			delete(ev["data"].(map[string]any)["class"].(map[string]any), "starts_at")
		}), "dispatcher", "invalid"},
		{"event: oversize", "", oversizeEvent(t), "dispatcher", "decode"},
		{"event: unknown type", "", editEvent("gym.booking.confirmed", func(ev map[string]any) { ev["type"] = "gym.locker.opened" }), "", ""},
		{"notification: garbled", topics.Channel(notification.Push), []byte("\x00\x01garbled{"), "push", "decode"},
		{"notification: trailing data", topics.Channel(notification.SMS), append(encode(smsN, func(*notification.Notification) {}), []byte(" {}")...), "sms", "decode"},
		{"notification: wrong channel topic", topics.Channel(notification.Push), encode(smsN, func(*notification.Notification) {}), "push", "invalid"},
		{"notification: id does not match its fields", topics.Channel(notification.SMS), encode(smsN, func(n *notification.Notification) { n.To = "+447700900999" }), "sms", "invalid"},
		{"notification: unknown template", topics.Channel(notification.Push), encode(pushN, func(n *notification.Notification) {
			n.Template = "gym.locker.opened/push"
			n.ID = notification.NewID(n.EventID, n.Template, n.Channel, n.RecipientID, n.To)
		}), "push", "render"},
		{"notification: data missing what the template needs", topics.Channel(notification.SMS), encode(smsN, func(n *notification.Notification) {
			n.Data = notification.DataOf(map[string]string{"unrelated": "x"})
		}), "sms", "render"},
	}

	// Each bad record goes right before a good event with the same key,
	// so it is ahead of good work on its partition.
	w := newWorkload(t, g, len(cases))
	writer := &kafka.Writer{Addr: kafka.TCP(env.brokers()...), Transport: &kafka.Transport{}, Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond, BatchBytes: 4 << 20}
	defer writer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The booking service's topic accepts records larger than herald's
	// event limit (its operators' choice, not herald's).
	client := &kafka.Client{Addr: kafka.TCP(env.brokers()...)}
	ac, err := client.AlterConfigs(ctx, &kafka.AlterConfigsRequest{Resources: []kafka.AlterConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: env.cfg.EventsTopic,
		Configs: []kafka.AlterConfigRequestConfig{{Name: "max.message.bytes", Value: "4194304"}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ac.Errors {
		if e != nil {
			t.Fatal(e)
		}
	}
	for i, tc := range cases {
		ev := w.events[i]
		topic, key := tc.topic, ev.Key
		if topic == "" {
			topic = env.cfg.EventsTopic
		} else {
			key = []byte(smsN.RecipientID)
		}
		if err := writer.WriteMessages(ctx, kafka.Message{Topic: topic, Key: key, Value: tc.value}); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if err := writer.WriteMessages(ctx, kafka.Message{Topic: env.cfg.EventsTopic, Key: ev.Key, Value: ev.Value}); err != nil {
			t.Fatal(err)
		}
	}

	assertExactlyOnce(t, "good records after bad ones", waitDelivered(t, env, w, 60*time.Second))

	dead := readAll(t, env.brokers(), topics.DLQ)
	for _, tc := range cases {
		var found []map[string]string
		for _, m := range dead {
			if bytes.Equal(m.Value, tc.value) || len(tc.value) > dlq.MaxValueSize && bytes.Equal(m.Value, tc.value[:dlq.MaxValueSize]) {
				h := map[string]string{}
				for _, x := range m.Headers {
					h[x.Key] = string(x.Value)
				}
				found = append(found, h)
			}
		}
		switch {
		case tc.reason == "" && len(found) != 0:
			t.Errorf("%s: dead-lettered, want skipped", tc.name)
		case tc.reason == "":
		case len(found) != 1:
			t.Errorf("%s: %d DLQ records, want 1", tc.name, len(found))
		case found[0][dlq.HeaderReason] != tc.reason || found[0][dlq.HeaderStage] != tc.stage:
			t.Errorf("%s: DLQ reason %q stage %q, want %q %q (error: %s)", tc.name,
				found[0][dlq.HeaderReason], found[0][dlq.HeaderStage], tc.reason, tc.stage, found[0][dlq.HeaderError])
		case len(tc.value) > dlq.MaxValueSize && found[0][dlq.HeaderTruncated] != strconv.Itoa(len(tc.value)):
			t.Errorf("%s: DLQ record without the original length", tc.name)
		default:
			t.Logf("%-50s → %s/%s: %s", tc.name, tc.stage, tc.reason, found[0][dlq.HeaderError])
		}
	}
}

// oversizeEvent is a well-formed event larger than events.MaxEventSize, as
// a booking service whose topic allows bigger records could produce.
func oversizeEvent(t *testing.T) []byte {
	pad := strings.Repeat("x", events.MaxEventSize)
	b, err := json.Marshal(map[string]any{"specversion": "1.0", "id": "evt_big", "source": "s", "type": "gym.class.reminder", "data": map[string]any{"pad": pad}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
