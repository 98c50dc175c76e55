package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/gymhq/herald/dispatcher"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/sim"
	"github.com/gymhq/herald/templates"
	"github.com/gymhq/herald/topics"
)

// pendingMetrics are series the alerts or the issue name that other work
// adds (circuit breakers, suppressions, rate limiting). Until it lands they
// may be absent; once present they are checked like the rest.
var pendingMetrics = []string{
	"herald_circuit_breaker_state",
	"herald_suppressions_added_total",
	"herald_suppressed_total",
	"herald_rate_limit_wait_seconds",
}

// scrape fetches /metrics and parses it.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return mf
}

// series returns the value of the sample of family name whose labels
// include want (a counter's, gauge's or histogram's count), and whether one
// exists.
func series(mf map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := mf[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func sum(mf map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	total := 0.0
	f := mf[name]
	if f == nil {
		return 0
	}
next:
	for _, m := range f.Metric {
		for _, l := range m.Label {
			if v, ok := want[l.GetName()]; ok && v != l.GetValue() {
				continue next
			}
		}
		total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return total
}

// TestObservability runs the fleet end to end over a small mixed workload
// (deliveries, a transient provider failure, permanent failures whose
// provider errors quote the address) and then checks what an operator sees:
// /metrics has every series the dashboards and alerts use, with values that
// add up, consumer lag back to 0 once drained; and the logs have one JSON
// line per final outcome with the docs/contracts.md §8 fields and no address in clear.
func TestObservability(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	redis := redistest.Start(t)
	env, logs := newTestEnv(t, 3, redis)
	env.fleet.live.LagEvery = 100 * time.Millisecond

	// The workload and what it should produce, from the planner.
	g := sim.New(sim.Options{Seed: 11, Members: 20, Prefix: "obs"})
	tpl, err := templates.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	planner := &dispatcher.Planner{Templates: tpl, Now: time.Now}
	var evs []sim.Event
	addresses := map[string]string{} // address → channel
	var badPhone, badEmail string
	for range 40 {
		ev := g.Next()
		evs = append(evs, ev)
		ns, err := planner.Plan(ev.Value)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range ns {
			addresses[n.To] = string(n.Channel)
			if n.Channel == notification.SMS && badPhone == "" {
				badPhone = n.To
			}
			if n.Channel == notification.Email && badEmail == "" {
				badEmail = n.To
			}
		}
	}
	if badPhone == "" || badEmail == "" {
		t.Fatal("workload has no SMS or no email")
	}
	total, permanent := 0, 0
	for _, ev := range evs {
		ns, _ := planner.Plan(ev.Value)
		for _, n := range ns {
			if n.To == badPhone || n.To == badEmail {
				permanent++
			} else {
				total++
			}
		}
	}
	// Provider errors that quote the address, as Twilio's and SMTP
	// servers' do: it must not reach the logs in clear either.
	env.twilio.FailNumber(badPhone, 400, 21211, "The 'To' number "+badPhone+" is not a valid phone number.")
	if err := env.smtp.FailAddress(badEmail, 550, "5.1.1", "<"+badEmail+">: mailbox unavailable"); err != nil {
		t.Fatal(err)
	}
	env.twilio.FailNext(2, 503, 20500)

	addr := mustServe(t, env)
	before := scrape(t, addr)
	// Every channel × outcome × reason series exists before any traffic.
	for _, ch := range notification.Known() {
		for _, r := range failure.Reasons {
			for _, o := range []string{obs.OutcomeFailed, obs.OutcomeRetry} {
				if _, ok := series(before, "herald_notifications_total", map[string]string{"channel": string(ch), "outcome": o, "reason": string(r)}); !ok {
					t.Errorf("at start, no herald_notifications_total{channel=%q,outcome=%q,reason=%q}", ch, o, r)
				}
			}
		}
		for _, o := range []string{obs.OutcomeSent, obs.OutcomeDuplicate} {
			if _, ok := series(before, "herald_notifications_total", map[string]string{"channel": string(ch), "outcome": o, "reason": ""}); !ok {
				t.Errorf("at start, no herald_notifications_total{channel=%q,outcome=%q}", ch, o)
			}
		}
	}

	startFleet(t, env)
	ctx := context.Background()
	for _, ev := range evs {
		if err := env.publishEvent(ctx, ev.Key, ev.Value); err != nil {
			t.Fatal(err)
		}
	}
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	if err := env.outbox.Wait(wctx, total); err != nil {
		t.Fatalf("delivered %d of %d: %v", env.outbox.Len(), total, err)
	}
	waitDrained(t, env)

	// Consumer lag: one series per group, topic and partition, all 0 once
	// drained (the poller runs every 100ms here).
	var mf map[string]*dto.MetricFamily
	// Each channel's topic and retry topic; the dispatcher's events and
	// derived topics; the attendance group's events and the live group's
	// topic; the scheduler's schedule topic: 3 partitions each.
	wantLag := len(notification.Known())*2*3 + 5*3
	deadline := time.Now().Add(30 * time.Second)
	for {
		mf = scrape(t, addr)
		n, behind := 0, 0.0
		if f := mf["herald_consumer_lag"]; f != nil {
			n = len(f.Metric)
			behind = sum(mf, "herald_consumer_lag", nil)
		}
		if n == wantLag && behind == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("herald_consumer_lag: %d series totalling %v, want %d series at 0", n, behind, wantLag)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, ch := range notification.Known() {
		for _, topic := range []string{topics.Channel(ch), topics.Retry(ch)} {
			for p := range 3 {
				if _, ok := series(mf, "herald_consumer_lag", map[string]string{"group": topics.Group(ch), "topic": topic, "partition": strconv.Itoa(p)}); !ok {
					t.Errorf("no herald_consumer_lag for %s %s/%d", topics.Group(ch), topic, p)
				}
			}
		}
	}

	// Drained and idle by choice: alive and ready.
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := get(t, "http://"+addr+path); code != http.StatusOK {
			t.Errorf("%s after the run: %d %s", path, code, body)
		}
	}

	// Values add up.
	sent := sum(mf, "herald_notifications_total", map[string]string{"outcome": "sent"})
	if int(sent) != total {
		t.Errorf("herald_notifications_total{outcome=sent} sums to %v, outbox has %d", sent, total)
	}
	if v, _ := series(mf, "herald_notifications_total", map[string]string{"channel": "sms", "outcome": "failed", "reason": "invalid_address"}); v < 1 {
		t.Errorf("failed sms invalid_address = %v, want ≥ 1", v)
	}
	// A permanent failure that names the address (invalid number,
	// unsubscribed, gone token, 5.1.1) suppresses it, so a later
	// notification to it is suppressed instead of failing again; only the
	// failures are dead-lettered.
	failed := sum(mf, "herald_notifications_total", map[string]string{"outcome": "failed"})
	suppressed := sum(mf, "herald_notifications_total", map[string]string{"outcome": obs.OutcomeSuppressed})
	if int(failed+suppressed) != permanent {
		t.Errorf("failed %v + suppressed %v notifications, want %d permanent failures", failed, suppressed, permanent)
	}
	if v := sum(mf, "herald_dlq_writes_total", nil); v != failed {
		t.Errorf("herald_dlq_writes_total sums to %v, want %v (one per failed notification)", v, failed)
	}
	if v, _ := series(mf, "herald_retries_total", map[string]string{"channel": "sms", "reason": "unavailable"}); v < 2 {
		t.Errorf("herald_retries_total{sms,unavailable} = %v, want ≥ 2 (two 503s)", v)
	}
	for _, ch := range notification.Known() {
		c := map[string]string{"channel": string(ch)}
		// Every channel has the series; those the workload sends on (a
		// webhook needs a subscription, which this tree has not) count.
		sent := sum(mf, "herald_notifications_total", map[string]string{"channel": string(ch), "outcome": "sent"})
		if v, ok := series(mf, "herald_send_duration_seconds", c); !ok || sent > 0 && v < 1 {
			t.Errorf("herald_send_duration_seconds{channel=%q} count %v", ch, v)
		}
		for _, state := range []string{"sent", "failed"} {
			if _, ok := series(mf, "herald_idempotency_hits_total", map[string]string{"channel": string(ch), "state": state}); !ok {
				t.Errorf("no herald_idempotency_hits_total{channel=%q,state=%q}", ch, state)
			}
		}
		if v, ok := series(mf, "herald_in_flight", map[string]string{"group": topics.Group(ch)}); !ok || v < 0 {
			t.Errorf("herald_in_flight{group=%q} = %v (present %v)", topics.Group(ch), v, ok)
		}
	}

	// Every herald_ metric the alerts use is exported (or pending).
	rules, err := os.ReadFile("../../deploy/base/prometheusrule.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var pr struct {
		Spec struct {
			Groups []struct {
				Rules []struct{ Record, Expr string }
			}
		}
	}
	if err := yaml.Unmarshal(rules, &pr); err != nil {
		t.Fatal(err)
	}
	recorded := map[string]bool{}
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			recorded[r.Record] = true
		}
	}
	used := regexp.MustCompile(`\bherald_[a-z_]+\b`)
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			for _, name := range used.FindAllString(r.Expr, -1) {
				switch {
				case mf[name] != nil:
				case slices.Contains(pendingMetrics, name):
					t.Logf("alert metric %s not exported yet (pending other work)", name)
				default:
					t.Errorf("the alerts use %s, which /metrics does not export", name)
				}
			}
		}
	}
	for _, name := range pendingMetrics {
		if mf[name] == nil {
			t.Logf("pending: %s not exported", name)
		}
	}

	// Logs: one JSON line per final outcome, docs/contracts.md §8 fields, nothing in
	// clear.
	out := logs.String()
	for a, ch := range addresses {
		if ch != "push" && ch != "inapp" && strings.Contains(out, a) { // an in-app address is the recipient_id
			t.Errorf("log contains the %s address %s in clear", ch, a)
		}
	}
	fields := []string{"event_id", "notification_id", "channel", "template", "outcome", "attempt", "partition", "offset", "provider_message_id", "latency_ms"}
	outcomes := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var f map[string]any
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			t.Fatalf("log line is not JSON: %s", line)
		}
		o, ok := f["outcome"].(string)
		if !ok {
			continue
		}
		outcomes[o]++
		for _, k := range fields {
			if _, ok := f[k]; !ok {
				t.Errorf("outcome line without %s: %s", k, line)
			}
		}
		if c, ok := f["caller"]; ok { // worker.New: a cost per notification, and always the same line
			t.Errorf("outcome line names its caller %v: %s", c, line)
		}
		if o == obs.OutcomeSent && f["provider_message_id"] == "" {
			t.Errorf("sent line without a provider message id: %s", line)
		}
		// An in-app address is the person's id, not contact data: shown as is.
		if to, _ := f["to"].(string); to == "" || (!strings.Contains(to, "*") && f["channel"] != "inapp") {
			t.Errorf("outcome line with no masked address: %s", line)
		}
	}
	if outcomes[obs.OutcomeSent] != total || outcomes[obs.OutcomeFailed]+outcomes[obs.OutcomeSuppressed] != permanent {
		t.Errorf("outcome lines %v, want %d sent and %d failed or suppressed", outcomes, total, permanent)
	}
	t.Log(fmt.Sprintf("%d events → %d sent, %d failed; %d lag series at 0", len(evs), total, permanent, wantLag))
}
