package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/receipts"
	"github.com/gymhq/herald/sim"
	"github.com/gymhq/herald/sinks"
	"github.com/gymhq/herald/suppress"
)

// TestDeliveryReceipts runs SMS delivery receipts as herald dev does:
// the Twilio fake posts signed status callbacks to the fleet's HTTP port,
// the receipt of every SMS moves past "accepted", a number Twilio reports
// unreachable (30005) ends undelivered with the code and is suppressed, a
// forged callback is refused, and the metric counts by channel, provider
// and status.
func TestDeliveryReceipts(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	rs := redistest.Start(t)
	addr := freeAddr(t)
	env, err := newDevEnv(devOptions{KafkaAddr: "127.0.0.1:0", Partitions: 2, RedisURL: rs.URL(), Log: jsonLogger(&syncBuffer{}),
		CallbackBase: "http://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)
	srv, err := serveHTTP(addr, env.fleet, env.routes)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	g := sim.New(sim.Options{Seed: 7, Members: 500, Prefix: "rcpt"})
	w := newWorkload(t, g, 0)
	// Class cancellations: their SMS have priority high, which goes
	// through quiet hours. Reminders' SMS wait for the end of the
	// recipient's quiet hours, and from 04:00 to 05:59 UTC every one of
	// the simulator's 200 reminders was deferred (no SMS to send, and the
	// test failed at that time of day).
	for i := 0; i < 200 && smsAddresses(w) < 6; i++ {
		w.add(t, g.Make("gym.class.cancelled"))
	}
	// The unreachable number gets one SMS: its receipt suppresses it, so
	// a second would rightly not be sent.
	var dead string
	for k, n := range w.want {
		if k.channel == "sms" && n == 1 {
			dead = k.to
			break
		}
	}
	if dead == "" {
		t.Fatal("workload sends no SMS")
	}
	env.twilio.DeliveryOutcome(dead, "undelivered", 30005)
	startFleet(t, env)
	w.publish(t, env)
	waitDelivered(t, env, w, 60*time.Second)

	store := receipts.NewRedis(rs.Client(), 0)
	ctx := context.Background()
	var sms, delivered int
	waitFor(t, "every SMS's final receipt", func() bool {
		sms, delivered = 0, 0
		final := true
		for _, d := range env.outbox.All() {
			if d.Channel != "sms" {
				continue
			}
			sms++
			r, ok, err := store.Get(ctx, d.NotificationID)
			if err != nil {
				t.Fatal(err)
			}
			if !ok || !r.Status.Final() {
				final = false
				continue
			}
			switch {
			case d.To == dead:
				if r.Status != receipts.StatusUndelivered || r.Code != "30005" || r.Provider != "twilio" {
					t.Fatalf("receipt for the unreachable number: %+v", r)
				}
			case r.Status == receipts.StatusDelivered:
				delivered++
			}
		}
		return final && sms > 0
	})
	t.Logf("%d SMS: %d delivered, %d to the unreachable number undelivered (30005)", sms, delivered, countTo(env, dead))
	if delivered != sms-countTo(env, dead) {
		t.Errorf("%d of %d SMS delivered", delivered, sms)
	}
	if e, ok, err := suppress.NewRedis(rs.Client(), "", nil).Lookup(ctx, "sms", dead); err != nil || !ok || e.Reason != "invalid_address" {
		t.Errorf("unreachable number not suppressed: %+v %v %v", e, ok, err)
	}

	// herald trace shows what the provider said.
	var deadEvent string
	for _, d := range env.outbox.All() {
		if d.To == dead {
			deadEvent = d.EventID
		}
	}
	var out, errOut bytes.Buffer
	if code := runTrace(ctx, []string{"--since", "1h", deadEvent}, toolEnv(env, rs), &out, &errOut); code != 0 ||
		!strings.Contains(out.String(), "the provider reports it undelivered (30005") {
		t.Errorf("herald trace %s: exit %d\n%s%s", deadEvent, code, out.String(), errOut.String())
	}

	// A callback nobody signed is refused.
	resp, err := http.Post("http://"+addr+receipts.TwilioPath, "application/x-www-form-urlencoded",
		strings.NewReader("MessageSid=SM00000000000000000000000000000000&MessageStatus=delivered"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("unsigned callback: %d, want 403", resp.StatusCode)
	}

	resp, err = http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`herald_delivery_receipts_total{channel="sms",provider="twilio",status="delivered"}`, `status="undelivered"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func smsAddresses(w *workload) int {
	n := 0
	for k := range w.want {
		if k.channel == "sms" {
			n++
		}
	}
	return n
}

func countTo(env *devEnv, to string) int {
	n := 0
	for _, d := range env.outbox.All() {
		if d.To == to {
			n++
		}
	}
	return n
}

// TestEmailBounces: with HERALD_SMTP_BOUNCE_TOKEN set, a bounce posted to
// the email role's HTTP port marks its notification bounced (found by the
// Message-ID herald made from the notification id), suppresses a 5.1.1
// address, shows in herald trace; a post without the token is refused.
func TestEmailBounces(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	const token = "bounce-token-0123456789"
	rs := redistest.Start(t)
	addr := freeAddr(t)
	env, err := newDevEnv(devOptions{KafkaAddr: "127.0.0.1:0", Partitions: 2, RedisURL: rs.URL(), Log: jsonLogger(&syncBuffer{}),
		Settings: map[string]string{"HERALD_SMTP_BOUNCE_TOKEN": token}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)
	srv, err := serveHTTP(addr, env.fleet, env.routes)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	startFleet(t, env)
	g := sim.New(sim.Options{Seed: 9, Members: 200, Prefix: "bnc"})
	w := newWorkload(t, g, 0)
	w.add(t, g.Make("gym.booking.confirmed"))
	w.publish(t, env)
	waitDelivered(t, env, w, 60*time.Second)
	var d sinks.Delivery
	for _, x := range env.outbox.All() {
		if x.Channel == "email" {
			d = x
		}
	}
	if d.MessageID == "" {
		t.Fatal("no email delivered")
	}
	raw, err := os.ReadFile("../../receipts/testdata/postfix-bounce.eml")
	if err != nil {
		t.Fatal(err)
	}
	bounce := strings.ReplaceAll(string(raw), "<ntf_0123456789abcdef@herald.example.com>", d.MessageID)
	bounce = strings.ReplaceAll(bounce, "nobody@example.org", d.To)
	post := func(auth string) int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+receipts.BouncePath, strings.NewReader(bounce))
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("wrong-token-0123456789"); code != http.StatusUnauthorized {
		t.Errorf("bounce with a wrong token: %d, want 401", code)
	}
	if code := post(token); code != http.StatusOK {
		t.Fatalf("bounce: %d", code)
	}
	ctx := context.Background()
	r, ok, err := receipts.NewRedis(rs.Client(), 0).Get(ctx, d.NotificationID)
	if err != nil || !ok || r.Status != receipts.StatusBounced || r.Code != "5.1.1" || r.Provider != "smtp" {
		t.Errorf("receipt of the bounced email: %+v %v %v", r, ok, err)
	}
	if e, ok, err := suppress.NewRedis(rs.Client(), "", nil).Lookup(ctx, "email", d.To); err != nil || !ok || e.Reason != "invalid_address" {
		t.Errorf("bounced address not suppressed: %+v %v %v", e, ok, err)
	}
	var out, errOut bytes.Buffer
	if code := runTrace(ctx, []string{"--since", "1h", d.EventID}, toolEnv(env, rs), &out, &errOut); code != 0 ||
		!strings.Contains(out.String(), "the provider reports it bounced (5.1.1") {
		t.Errorf("herald trace: exit %d\n%s%s", code, out.String(), errOut.String())
	}
}
