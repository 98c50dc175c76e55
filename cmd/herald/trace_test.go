package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gymhq/herald/address"
	"github.com/gymhq/herald/dispatcher"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/sim"
	"github.com/gymhq/herald/story"
	"github.com/gymhq/herald/templates"
	"github.com/gymhq/herald/topics"
)

// herald trace answers "did member X get it, and if not why" from Kafka and
// Redis alone, for a class cancellation whose texts and emails meet a
// permanent failure, a retry and plain delivery.
func TestTraceCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	redis := redistest.Start(t)
	env, _ := newTestEnv(t, 2, redis)

	// A class cancellation: an email and a text to every attendee.
	tpl, err := templates.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	g := sim.New(sim.Options{Seed: 11, Members: 40, Prefix: "trace"})
	var (
		ev            sim.Event
		ns            []notification.Notification
		emails, texts []notification.Notification
	)
	for range 100 {
		ev = g.Make("gym.class.cancelled")
		if ns, err = (&dispatcher.Planner{Templates: tpl}).Plan(ev.Value); err != nil {
			t.Fatal(err)
		}
		emails, texts = nil, nil
		for _, n := range ns {
			switch n.Channel {
			case notification.Email:
				emails = append(emails, n)
			case notification.SMS:
				texts = append(texts, n)
			}
		}
		if len(emails) >= 2 && len(texts) >= 2 {
			break
		}
	}
	if len(emails) < 2 || len(texts) < 2 {
		t.Fatalf("no simulated cancellation plans at least 2 emails and 2 texts")
	}
	// Faults: one text to an unsubscribed number (permanent), one mailbox
	// whose server keeps answering 451 (a retry is scheduled).
	unsub, deferred := texts[0], emails[0]
	env.twilio.FailNumber(unsub.To, 400, 21610, "Attempt to send to unsubscribed recipient")
	if err := env.smtp.FailAddress(deferred.To, 451, "4.3.0", "try again later"); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, n := range ns {
		want[n.ID] = "sent"
	}
	// The email's first retry fires and fails again: its second waits in
	// the scheduler. The story said "pending, retry 1 waits until" a past
	// time, taking the first retry's done mark for the second's.
	want[unsub.ID], want[deferred.ID] = "failed", "deferred"

	startFleet(t, env)
	ctx := context.Background()
	if err := env.publishEvent(ctx, ev.Key, ev.Value); err != nil {
		t.Fatal(err)
	}

	getenv := toolEnv(env, redis)
	// Poll until every notification has reached the state the faults lead
	// to: push sent, SMS failed, email's next retry held by the scheduler
	// after one retry record.
	var got story.Story
	deadline := time.Now().Add(30 * time.Second)
	for {
		var out, errOut bytes.Buffer
		code := runTrace(ctx, []string{ev.ID, "--json", "--since", "1h"}, getenv, &out, &errOut)
		if code == 0 {
			got = story.Story{}
			if err := json.Unmarshal(out.Bytes(), &got); err != nil {
				t.Fatalf("trace --json: %v\n%s", err, out.String())
			}
			states := map[string]string{}
			for _, d := range got.Notifications {
				states[d.NotificationID] = d.State
			}
			if equalStates(states, want) && hasKind(got, "retry") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace never showed the expected states; last exit %d: %s %s", code, out.String(), errOut.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	if !got.StoreChecked || got.Records[0].Kind != "event" || got.Records[0].EventType != "gym.class.cancelled" {
		t.Errorf("story does not start with the event: %+v", got.Records[0])
	}
	for _, d := range got.Notifications {
		switch d.NotificationID {
		case unsub.ID:
			if d.Reason != "unsubscribed" || d.To != address.MaskPhone(unsub.To) || d.RecipientID != unsub.RecipientID {
				t.Errorf("unsubscribed text: %+v", d)
			}
		case deferred.ID:
			if !strings.Contains(d.Verdict, "the scheduler holds it until") || !strings.Contains(d.Verdict, "(retry)") {
				t.Errorf("deferred email verdict %q, want the next retry's time", d.Verdict)
			}
		default:
			if d.ProviderMessageID == "" || !strings.Contains(d.Verdict, "delivered") {
				t.Errorf("delivered %s: %+v", d.Channel, d)
			}
		}
	}
	if !hasKind(got, "dead_letter") {
		t.Error("no dead letter for the unsubscribed SMS")
	}

	// The human report says the same, and never an address in clear.
	var out, errOut bytes.Buffer
	if code := runTrace(ctx, []string{"--since", "1h", ev.ID}, getenv, &out, &errOut); code != 0 {
		t.Fatalf("trace exit %d: %s", code, errOut.String())
	}
	report := out.String()
	t.Logf("herald trace %s:\n%s", ev.ID, report)
	for _, want := range []string{"gym.class.cancelled", "dead_letter", "permanent unsubscribed", "retry", "delivered: the provider accepted it"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	for _, n := range ns {
		if strings.Contains(report, n.To) && n.Channel != "inapp" { // an in-app address is the person's id
			t.Errorf("report shows %s address in clear", n.Channel)
		}
	}

	// An unknown event: exit 1 and say so.
	out.Reset()
	if code := runTrace(ctx, []string{"evt_never_sent"}, getenv, &out, &errOut); code != 1 || !strings.Contains(out.String(), "nothing found") {
		t.Errorf("unknown event: exit %d, %q", code, out.String())
	}
	// Bad configuration: one line naming the variable, exit 2.
	errOut.Reset()
	if code := runTrace(ctx, []string{"evt_1"}, func(string) string { return "" }, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "HERALD_KAFKA_BROKERS: required") {
		t.Errorf("missing brokers: exit %d, %q", code, errOut.String())
	}
}

func hasKind(st story.Story, kind string) bool {
	for _, r := range st.Records {
		if r.Kind == kind {
			return true
		}
	}
	return false
}

func equalStates(got, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// TestTraceUsage: without an event id herald trace prints its usage (not a
// complaint about brokers it does not need yet), and -h shows each flag's
// placeholder as its type, never another variable's name (the TLS cert and
// key flags showed each other's).
func TestTraceUsage(t *testing.T) {
	noEnv := func(string) string { return "" }
	for _, args := range [][]string{nil, {"--since", "1h"}, {"--json"}} {
		var out, errOut bytes.Buffer
		code := runTrace(context.Background(), args, noEnv, &out, &errOut)
		if code != 2 || !strings.HasPrefix(errOut.String(), "Usage: herald trace EVENT_ID") || strings.Contains(errOut.String(), "required") {
			t.Errorf("trace %q: exit %d, stderr %q: want 2 and the usage", args, code, errOut.String())
		}
	}

	var out, errOut bytes.Buffer
	if code := runTrace(context.Background(), []string{"-h"}, noEnv, &out, &errOut); code != 0 {
		t.Fatalf("-h: exit %d", code)
	}
	flags := 0
	for _, line := range strings.Split(errOut.String(), "\n") {
		// "  -name placeholder" lines; usage text lines start with a tab.
		f := strings.Fields(line)
		if !strings.HasPrefix(line, "  -") || len(f) > 2 {
			continue
		}
		flags++
		if len(f) == 2 && f[1] != "string" {
			t.Errorf("flag %s shows placeholder %q, want its type", f[0], f[1])
		}
	}
	if flags < 10 {
		t.Fatalf("found %d flag lines in -h output:\n%s", flags, errOut.String())
	}
}

// Channel records written without the herald-event-id header (by hand with
// kcat, as the runbooks do, or by another tool) are still part of their
// event's story, in either form: trace used to match on the header only and
// showed nothing for them.
func TestTraceFindsRecordsWithoutTheHeader(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	redis := redistest.Start(t)
	env, _ := newTestEnv(t, 1, redis)
	ctx := context.Background()
	n := notification.Notification{EventID: "evt_by_hand", EventType: "gym.class.reminder", Template: "gym.class.reminder",
		Channel: notification.Push, Locale: "en", RecipientID: "mem_1", To: "device-token-1", CreatedAt: time.Now().UTC(),
		Data: notification.DataOf(map[string]string{"class_name": "Spin"})}
	n.ID = notification.NewID(n.EventID, n.Template, n.Channel, n.RecipientID, n.To)
	binary, err := notification.Encode(&n)
	if err != nil {
		t.Fatal(err)
	}
	other := n
	other.EventID, other.ID = "evt_by_hand_2", notification.NewID("evt_by_hand_2", n.Template, n.Channel, n.RecipientID, n.To)
	other.Data = notification.DataOf(map[string]string{"note": "evt_by_hand"}) // names the event in its value but is not from it
	otherValue, err := notification.Encode(&other)
	if err != nil {
		t.Fatal(err)
	}
	j := n
	j.Channel, j.To = notification.Email, "member@example.com"
	j.ID = notification.NewID(j.EventID, j.Template, j.Channel, j.RecipientID, j.To)
	jsonValue, err := notification.JSON(&j)
	if err != nil {
		t.Fatal(err)
	}
	var specs []kafkarun.TopicSpec // what the fleet creates when it starts
	for _, name := range topics.Owned() {
		specs = append(specs, kafkarun.TopicSpec{Name: name, Partitions: 1, Replication: 1})
	}
	if err := kafkarun.EnsureTopics(ctx, env.brokers(), nil, specs); err != nil {
		t.Fatal(err)
	}
	for _, m := range []queue.Message{
		{Topic: topics.Channel(notification.Push), Key: []byte("mem_1"), Value: binary},
		{Topic: topics.Channel(notification.Push), Key: []byte("mem_1"), Value: otherValue},
		{Topic: topics.Retry(notification.Email), Key: []byte("mem_1"), Value: jsonValue},
	} {
		if err := env.prod.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	var out, errOut bytes.Buffer
	if code := runTrace(ctx, []string{n.EventID, "--json", "--since", "1h"}, toolEnv(env, redis), &out, &errOut); code != 0 {
		t.Fatalf("trace exit %d: %s %s", code, out.String(), errOut.String())
	}
	var got story.Story
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, r := range got.Records {
		ids[r.NotificationID] = r.Kind
	}
	if ids[n.ID] != "notification" || ids[j.ID] != "retry" || len(ids) != 2 {
		t.Errorf("records by notification id %v, want %s as notification and %s as retry, and nothing else", ids, n.ID, j.ID)
	}
}
