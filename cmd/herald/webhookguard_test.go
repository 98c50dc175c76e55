package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/channels/webhook"
	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/pipeline"
)

// partners answers per subscription: "dead" refuses every call.
type partners struct{ calls map[string]int }

func (p *partners) Send(_ context.Context, m *channels.Message) (channels.Receipt, error) {
	p.calls[m.To]++
	if m.To == "dead" {
		return channels.Receipt{}, failure.Retry(failure.ReasonNetwork, errors.New("connect: connection refused"))
	}
	return channels.Receipt{ProviderMessageID: "ok"}, nil
}
func (p *partners) Close() error { return nil }

// The webhook channel's guard has a breaker per subscription: with one
// partner down, the channel keeps passing and the other partner is
// served; the dead one's breaker is reported under its subscription id.
// Before, one breaker for the channel opened and paused every partner
// (an outside tester's find: crm got nothing for 2.5 minutes).
func TestWebhookGuardPerSubscription(t *testing.T) {
	p := &partners{calls: map[string]int{}}
	f := &fleet{cfg: &config.Config{BreakerFailures: 3, BreakerOpenFor: time.Minute}, metrics: obs.NewMetrics(), log: zap.NewNop(),
		senders: map[notification.Channel]channels.Sender{webhook.Name: p}}
	f.prot.guards = map[notification.Channel]pipeline.Guard{}
	g, err := f.guard(pipeline.Common{Config: f.cfg, Metrics: f.metrics, Logger: f.log}, webhook.Name)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := g.Send(ctx, &channels.Message{To: "crm"}); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		_, _ = g.Send(ctx, &channels.Message{To: "dead"})
	}
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := g.Wait(wctx); err != nil {
		t.Fatalf("the webhook channel's gate with one dead partner: %v", err)
	}
	if _, err := g.Send(ctx, &channels.Message{To: "crm"}); err != nil || p.calls["crm"] != 2 {
		t.Fatalf("crm after dead's breaker opened: %v, %d calls", err, p.calls["crm"])
	}
	if s := testutil.ToFloat64(f.metrics.Protect.ProviderBreakerState.WithLabelValues("webhook", "dead")); s != 2 {
		t.Fatalf("dead's breaker state %v, want 2 (open)", s)
	}
	if n := testutil.ToFloat64(f.metrics.Protect.EndpointsOpen.WithLabelValues("webhook")); n != 1 {
		t.Fatalf("herald_endpoints_open{channel=webhook} %v, want 1 (the alert reads it)", n)
	}
}

// The fleet finds the webhook sender's subscriptions, in herald run and
// under herald dev's outbox wrapper, so its breakers count the partners
// nothing has been sent to yet.
func TestEndpointsOfTheWebhookSender(t *testing.T) {
	s, err := webhook.New(webhook.Options{Subscriptions: func() *webhook.Subscriptions { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	for _, sender := range []channels.Sender{s, identifying{Sender: s, ch: "webhook"}} {
		if e, ok := endpointsOf(sender); !ok || e.Len() != 0 || e.Has("x") {
			t.Errorf("%T: endpoints %v, %v", sender, e, ok)
		}
	}
	if _, ok := endpointsOf(&partners{}); ok {
		t.Error("a sender without subscriptions has endpoints")
	}
}
