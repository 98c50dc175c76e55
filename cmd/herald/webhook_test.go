package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/gymhq/herald/dlq"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/sim"
	"github.com/gymhq/herald/suppress"
	"github.com/gymhq/herald/topics"
)

// hookReceiver is a partner's endpoint: it verifies every delivery with
// the Standard Webhooks reference library and answers status.
type hookReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	ids    []string
	types  []string
	forged int
}

func newHookReceiver(t *testing.T, secret string, status int) *hookReceiver {
	v, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	r := &hookReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		var p struct{ Type string }
		_ = json.Unmarshal(b, &p)
		r.mu.Lock()
		if v.Verify(b, req.Header) != nil {
			r.forged++
		}
		r.ids = append(r.ids, req.Header.Get("webhook-id"))
		r.types = append(r.types, p.Type)
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *hookReceiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ids)
}

// TestWebhookEndToEnd runs the webhook channel through the real fleet on
// a template tree with a webhooks.yaml: deliveries verified by the
// reference library, one per notification id even when the event is
// published twice, an endpoint answering 410 dead-lettered once and then
// suppressed, and a subscription added to the running tree picked up by
// the hot reload.
func TestWebhookEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	crm, gone, late := newHookReceiver(t, secret, http.StatusNoContent), newHookReceiver(t, secret, http.StatusGone), newHookReceiver(t, secret, http.StatusOK)

	dir := filepath.Join(t.TempDir(), "templates")
	if err := os.CopyFS(dir, os.DirFS("../../templates")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "partners.secret"), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	subs := func(extra string) {
		t.Helper()
		y := fmt.Sprintf("subscriptions:\n"+
			"  - {id: crm, url: %q, secret_file: partners.secret, event_types: [gym.booking.confirmed, gym.booking.cancelled]}\n"+
			"  - {id: gone, url: %q, secret_file: partners.secret, event_types: [gym.booking.confirmed]}\n%s", crm.URL+"/hooks", gone.URL, extra)
		if err := os.WriteFile(filepath.Join(dir, "webhooks.yaml"), []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	subs("")

	redis := redistest.Start(t)
	env, logs := newTestEnvWith(t, 2, redis, dir)
	defer func() {
		if t.Failed() {
			t.Log(logs.String())
		}
	}()
	startFleet(t, env)
	ctx := context.Background()
	g := sim.New(sim.Options{Seed: 11, Members: 50, Prefix: "hook"})
	publish := func(ev sim.Event) {
		t.Helper()
		if err := env.publishEvent(ctx, ev.Key, ev.Value); err != nil {
			t.Fatal(err)
		}
	}

	// The first event: crm gets it; gone answers 410, is dead-lettered and
	// suppressed.
	first := g.Make("gym.booking.confirmed")
	publish(first)
	waitFor(t, "the first deliveries", func() bool { return crm.count() == 1 && gone.count() == 1 })
	list := suppress.NewRedis(redis.Client(), "", nil)
	waitFor(t, "the gone endpoint suppressed", func() bool {
		e, ok, err := list.Lookup(ctx, "webhook", "gone")
		return err == nil && ok && e.Reason == "endpoint_gone"
	})

	// More events, and the first one again (a producer retry).
	for range 4 {
		publish(g.Make("gym.booking.confirmed"))
	}
	publish(g.Make("gym.booking.cancelled"))
	publish(first)
	waitFor(t, "crm's six deliveries", func() bool { return crm.count() == 6 })
	waitDrained(t, env)

	crm.mu.Lock()
	seen := map[string]bool{}
	for _, id := range crm.ids {
		if seen[id] {
			t.Errorf("notification %s delivered twice", id)
		}
		seen[id] = true
	}
	if crm.forged != 0 || crm.types[len(crm.types)-1] != "gym.booking.cancelled" && !strings.Contains(strings.Join(crm.types, ","), "gym.booking.cancelled") {
		t.Errorf("crm: %d deliveries failed verification; types %v", crm.forged, crm.types)
	}
	crm.mu.Unlock()
	if n := gone.count(); n != 1 {
		t.Errorf("the gone endpoint was called %d times, want 1 (then suppressed)", n)
	}
	var dead int
	for _, m := range readAll(t, env.brokers(), topics.DLQ) {
		if e, err := dlq.Decode(fromKafka(m)); err == nil && e.Channel == "webhook" && e.Reason == "endpoint_gone" {
			dead++
		}
	}
	if dead != 1 {
		t.Errorf("%d endpoint_gone dead letters, want 1", dead)
	}

	// A subscription added while the fleet runs is served after the
	// reload.
	subs(fmt.Sprintf("  - {id: late, url: %q, secret_file: partners.secret, event_types: [gym.booking.confirmed]}\n", late.URL))
	waitFor(t, "the new subscriber's first delivery", func() bool {
		if late.count() > 0 {
			return true
		}
		publish(g.Make("gym.booking.confirmed"))
		return late.count() > 0
	})
	late.mu.Lock()
	if late.forged != 0 {
		t.Error("the late subscriber got a delivery that fails verification")
	}
	late.mu.Unlock()
}
