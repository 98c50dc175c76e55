package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/gymhq/herald/dlq"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/sim"
	"github.com/gymhq/herald/topics"
)

// TestOneBadRecipient runs the fleet on a class cancellation whose second
// attendee's phone is "555-1234", and a booking whose member has one
// malformed push token beside a good one. Everyone else — and the same
// people on their other channels and tokens — must be told exactly once;
// each refused address must be one DLQ record naming the recipient by id
// and nothing else about them, which `herald dlq inspect` shows and
// `herald dlq replay` refuses to replay.
func TestOneBadRecipient(t *testing.T) {
	if testing.Short() {
		t.Skip("fleet")
	}
	redis := redistest.Start(t)
	env, logs := newTestEnv(t, 3, redis)
	startFleet(t, env)

	sample := func(typ, name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "..", "templates", typ, "samples", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	swap := func(b []byte, old, new string) []byte {
		if !bytes.Contains(b, []byte(old)) {
			t.Fatalf("sample has no %s", old)
		}
		return bytes.Replace(b, []byte(old), []byte(new), 1)
	}
	cancelled := swap(sample("gym.class.cancelled", "three-attendees.json"), "+34600987654", "555-1234")
	confirmed := swap(sample("gym.booking.confirmed", "member-en.json"), `["fcm_tok_emma_iphone"]`, `["fcm tok emma", "fcm_tok_emma_iphone"]`)
	secrets := []string{"555-1234", "Marta", "Ruiz", "marta.ruiz", "fcm tok emma", "Emma", "Clarke", "emma.clarke"}

	w := newWorkload(t, nil, 0)
	w.add(t, sim.Event{ID: "evt_01JDC7T2LM", Type: "gym.class.cancelled", Key: []byte("cls_mad_yoga_0800"), Value: cancelled})
	w.add(t, sim.Event{ID: "evt_01JD8X3R6Y", Type: "gym.booking.confirmed", Key: []byte("cls_spin_0700"), Value: confirmed})
	if w.total != 11 {
		t.Fatalf("planned %d deliveries, want 11: 3 attendees' email, 2 SMS, 3 feeds; the member's email, push on the good token and feed", w.total)
	}
	w.publish(t, env)
	assertExactlyOnce(t, "everyone but the refused addresses", waitDelivered(t, env, w, 60*time.Second))
	for _, d := range env.outbox.All() {
		if d.To == "555-1234" || d.To == "fcm tok emma" {
			t.Errorf("delivered to a refused address: %+v", d)
		}
	}

	dead := readAll(t, env.brokers(), topics.DLQ)
	var got []string
	for i := range dead {
		e, err := dlq.Decode(fromKafka(dead[i]))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e.Channel+" "+e.RecipientID+" "+e.Reason)
		all := string(dead[i].Key) + string(dead[i].Value)
		for _, h := range dead[i].Headers {
			all += h.Key + "=" + string(h.Value) + "\n"
		}
		for _, s := range secrets {
			if strings.Contains(all, s) {
				t.Errorf("DLQ record carries %q:\n%s", s, all)
			}
		}
	}
	if strings.Join(got, ", ") != "sms mem_marta invalid_address, push mem_emma invalid_address" &&
		strings.Join(got, ", ") != "push mem_emma invalid_address, sms mem_marta invalid_address" {
		t.Errorf("DLQ holds %q, want one refusal for mem_marta's SMS and one for mem_emma's bad token", got)
	}

	// A transport of its own, as readAll: kafka-go's shared one caches
	// metadata from before the DLQ topic existed.
	tool := toolKafka{brokers: env.brokers(), conn: &kafkarun.Connection{Transport: &kafka.Transport{}}}
	var out bytes.Buffer
	if err := dlqInspect(context.Background(), &out, tool, 5, false); err != nil {
		t.Fatal(err)
	}
	t.Logf("herald dlq inspect:\n%s", out.String())
	if !strings.Contains(out.String(), "recipient=mem_marta channel=sms") || !strings.Contains(out.String(), "not replayable") {
		t.Errorf("dlq inspect does not show the refusal by recipient id:\n%s", out.String())
	}
	out.Reset()
	rep, err := dlqReplay(context.Background(), &out, tool, replayOptions{EventsTopic: env.cfg.EventsTopic})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("herald dlq replay:\n%s", out.String())
	if len(rep.Replayed) != 0 || rep.Skipped != 2 || !strings.Contains(out.String(), "correct it at the source (the person's address") {
		t.Errorf("dlq replay of refusals: %+v\n%s", rep, out.String())
	}

	// herald trace answers "did mem_marta get the SMS?": a line for the
	// refused address, by recipient id, with why (outside tester: the
	// refusals showed only as dead-letter records with no recipient).
	getenv := toolEnv(env, redis)
	var traceOut, traceErr bytes.Buffer
	if code := runTrace(context.Background(), []string{"evt_01JDC7T2LM", "--since", "1h"}, getenv, &traceOut, &traceErr); code != 0 {
		t.Fatalf("herald trace: exit %d\n%s%s", code, traceOut.String(), traceErr.String())
	}
	t.Logf("herald trace:\n%s", traceOut.String())
	var refusedLine string
	for _, l := range strings.Split(traceOut.String(), "\n") {
		if strings.Contains(l, "mem_marta") && strings.Contains(l, "refused") && strings.Contains(l, "invalid_address") {
			refusedLine = l
		}
	}
	if refusedLine == "" {
		t.Errorf("herald trace has no verdict line for mem_marta's refused SMS:\n%s", traceOut.String())
	}
	for _, s := range secrets {
		if strings.Contains(traceOut.String(), s) {
			t.Errorf("herald trace shows %q", s)
		}
	}

	for _, s := range secrets {
		if strings.Contains(logs.String(), s) {
			t.Errorf("logs carry %q", s)
		}
	}
	if !strings.Contains(logs.String(), `"recipient_id":"mem_marta"`) {
		t.Error("no log line names the refused recipient by id")
	}
}
