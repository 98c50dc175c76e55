package main

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/channels/email"
	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/sim"
	"github.com/gymhq/herald/sinks/smtpsink"
)

// TestSMTPRelayFailover runs the fleet with two SMTP relays in
// HERALD_SMTP_ADDR, built by the email descriptor as herald run builds it:
// mail is spread over both; while one refuses connections everything goes
// through the other within a few failures, nothing is lost or sent twice;
// when it is back, its probe returns it to the rotation. The provider
// metrics follow.
func TestSMTPRelayFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	redis := redistest.Start(t)
	env, _ := newTestEnv(t, 2, redis)
	relays := make([]*smtpsink.Sink, 2)
	for i := range relays {
		s, err := smtpsink.Start(env.outbox, smtpsink.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		relays[i] = s
	}
	cfg := *env.cfg
	cfg.SMTPAddr = relays[0].Addr() + "," + relays[1].Addr()
	cfg.SMTPTLS = config.SMTPTLSNone
	cfg.BreakerFailures, cfg.BreakerOpenFor = 3, 500*time.Millisecond
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := email.Descriptor.New(channels.Build{Config: &cfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	env.fleet.senders[notification.Email] = s
	startFleet(t, env)

	g := sim.New(sim.Options{Seed: 5, Members: 80, Prefix: "relay"})
	all := newWorkload(t, g, 0)
	emails := func(w *workload) int {
		n := 0
		for k, c := range w.want {
			if k.channel == "email" {
				n += c
			}
		}
		return n
	}
	m := env.fleet.metrics.Protect.ProviderSends
	sent := func(i int) float64 { return testutil.ToFloat64(m.WithLabelValues("email", relays[i].Addr(), "sent")) }
	phase := func(name string) (a, b float64) {
		w := newWorkload(t, g, 40)
		w.publish(t, env)
		all.merge(w)
		a0, b0 := sent(0), sent(1)
		waitDelivered(t, env, all, 60*time.Second)
		a, b = sent(0)-a0, sent(1)-b0
		t.Logf("%s: %d emails, relay A %v, relay B %v", name, emails(w), a, b)
		return a, b
	}
	if a, b := phase("both up"); a == 0 || b == 0 {
		t.Errorf("both up: A %v, B %v; want both used", a, b)
	}
	if err := relays[0].Refuse(true); err != nil {
		t.Fatal(err)
	}
	if a, _ := phase("A refusing"); a != 0 {
		t.Errorf("relay A accepted %v while refusing", a)
	}
	state := testutil.ToFloat64(env.fleet.metrics.Protect.ProviderBreakerState.WithLabelValues("email", relays[0].Addr()))
	if state != 2 {
		t.Errorf("relay A's breaker state %v, want 2 (open)", state)
	}
	if err := relays[0].Refuse(false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond)
	if a, _ := phase("A back"); a == 0 {
		t.Error("relay A took nothing after it came back")
	}
	assertExactlyOnce(t, "three phases", count(env, all))
	// Sends in flight when A went down each fail once before its breaker
	// opens (HERALD_MAX_IN_FLIGHT of them at most); every one was then
	// sent through B.
	failed := testutil.ToFloat64(m.WithLabelValues("email", relays[0].Addr(), "failed"))
	t.Logf("relay A failed %v calls before leaving the rotation", failed)
	if failed < 3 || failed > float64(cfg.MaxInFlight) {
		t.Errorf("relay A failed %v times; want from the breaker's 3 to the sends in flight", failed)
	}
}
