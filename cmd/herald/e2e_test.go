package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/gymhq/herald/dispatcher"
	"github.com/gymhq/herald/dlq"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/sim"
	"github.com/gymhq/herald/templates"
	"github.com/gymhq/herald/topics"
)

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) Sync() error { return nil }
func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func jsonLogger(w zapcore.WriteSyncer) *zap.Logger {
	log, err := obs.NewLoggerTo("info", "json", w)
	if err != nil {
		panic(err)
	}
	return log
}

type addrKey struct{ channel, to string }

// TestEndToEnd runs the whole fleet — in-process Kafka, a real redis-server,
// an SMTP server, Twilio and FCM fakes reached through the real client
// libraries — over a few hundred mixed events, including repeated ids
// (producer retries), malformed events, unknown types and provider
// failures, and checks that every expected message arrives exactly once at
// the right address, nothing else arrives, and the bad input is in the DLQ
// with reasons.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	redis := redistest.Start(t)
	env, logs := newTestEnv(t, 3, redis)

	// Provider failures with the providers' real error shapes. Permanent
	// ones must land in the DLQ and never be delivered; transient ones must
	// be retried and delivered once.
	const badNumber, unsubscribed = "+447700900007", "+447700900011"
	const goneToken = "fcm_mem_0003_a"
	const bouncing = "mem.0005@example.com"
	env.twilio.FailNumber(badNumber, 400, 21211, "The 'To' number "+badNumber+" is not a valid phone number.")
	env.twilio.FailNumber(unsubscribed, 400, 21610, "Attempt to send to unsubscribed recipient")
	env.twilio.FailNext(3, 503, 20500)
	env.fcm.Unregister(goneToken)
	if err := env.smtp.FailAddress(bouncing, 550, "5.1.1", "mailbox unavailable"); err != nil {
		t.Fatal(err)
	}
	if err := env.smtp.FailNext(2, 451, "4.3.0", "try again later"); err != nil {
		t.Fatal(err)
	}

	startFleet(t, env)
	ctx := context.Background()

	// The workload.
	const nEvents = 300
	g := sim.New(sim.Options{Seed: 42, Members: 60, Prefix: "e2e"})
	var evs []sim.Event
	for range nEvents {
		evs = append(evs, g.Next())
	}
	type rec struct{ key, value []byte }
	var records []rec
	for i, ev := range evs {
		records = append(records, rec{ev.Key, ev.Value})
		if i%10 == 0 { // a producer retry: the same event again, later
			records = append(records, rec{ev.Key, ev.Value})
		}
	}
	malformed := map[string]string{
		"not json":          `{"specversion":"1.0",`,
		"missing id":        `{"specversion":"1.0","source":"s","type":"gym.class.reminder","data":{}}`,
		"wrong specversion": `{"specversion":"0.3","id":"e1","source":"s","type":"gym.class.reminder","data":{}}`,
		// A bad phone is refused per recipient (TestOneBadRecipient); a bad
		// class time makes the whole event unusable.
		"bad class time": strings.Replace(string(g.Make("gym.waitlist.promoted").Value), `"starts_at":"2`, `"starts_at":"yesterday 2`, 1),
		"bad utf8":       "{\"specversion\":\"1.0\",\"id\":\"\xff\"}",
	}
	for _, v := range malformed {
		records = append(records, rec{[]byte("cls_x"), []byte(v)})
	}
	unknown := `{"specversion":"1.0","id":"evt_unknown_1","source":"s","type":"gym.locker.opened","data":{"x":1}}`
	records = append(records, rec{[]byte("cls_x"), []byte(unknown)})
	// Duplicates also arrive after the first copies were sent.
	for _, ev := range evs[:20] {
		records = append(records, rec{ev.Key, ev.Value})
	}

	// Expected deliveries, from the planner (whose routing rules are unit
	// tested in package templates), minus the addresses that fail
	// permanently.
	tpl, err := templates.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	planner := &dispatcher.Planner{Templates: tpl, Now: time.Now}
	want := map[addrKey]int{}
	wantIDs := map[string]bool{}
	permanent := 0
	for _, ev := range evs {
		ns, err := planner.Plan(ev.Value)
		if err != nil {
			t.Fatalf("plan %s: %v", ev.ID, err)
		}
		for _, n := range ns {
			if n.To == badNumber || n.To == unsubscribed || n.To == goneToken || n.To == bouncing {
				permanent++
				continue
			}
			want[addrKey{string(n.Channel), n.To}]++
			wantIDs[n.ID] = true
		}
	}
	total := 0
	for _, c := range want {
		total += c
	}
	if total < nEvents || permanent == 0 {
		t.Fatalf("workload too small: %d deliveries, %d permanent failures", total, permanent)
	}

	start := time.Now()
	for _, r := range records {
		if err := env.publishEvent(ctx, r.key, r.value); err != nil {
			t.Fatal(err)
		}
	}

	wctx, wcancel := context.WithTimeout(ctx, 90*time.Second)
	defer wcancel()
	if err := env.outbox.Wait(wctx, total); err != nil {
		got := map[addrKey]int{}
		for _, d := range env.outbox.All() {
			got[addrKey{d.Channel, d.To}]++
		}
		gotIDs := map[string]bool{}
		for _, d := range env.outbox.All() {
			gotIDs[d.NotificationID] = true
		}
		for _, ev := range evs {
			ns, _ := planner.Plan(ev.Value)
			for _, n := range ns {
				if wantIDs[n.ID] && !gotIDs[n.ID] {
					t.Logf("missing: %s %s %s %s cat=%s", n.ID, n.EventType, n.Template, n.Channel, n.Category)
					for _, l := range strings.Split(logs.String(), "\n") {
						if strings.Contains(l, n.ID) {
							t.Log("   ", l)
						}
					}
				}
			}
		}
		t.Fatalf("delivered %d of %d: %v", env.outbox.Len(), total, err)
	}
	elapsed := time.Since(start)
	// Quiesce: every group has committed to the end of every topic, so no
	// more deliveries can come.
	defer func() {
		if t.Failed() {
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, `"level":"warn"`) || strings.Contains(l, `"level":"error"`) {
					t.Log(l)
				}
			}
		}
	}()
	waitDrained(t, env)

	got := map[addrKey]int{}
	for _, d := range env.outbox.All() {
		got[addrKey{d.Channel, d.To}]++
		if d.Channel == "email" {
			id := strings.TrimSuffix(strings.TrimPrefix(d.MessageID, "<"), ">")
			id = id[:strings.IndexByte(id, '@')]
			if !wantIDs[id] {
				t.Errorf("email with unexpected Message-ID %s", d.MessageID)
			}
		}
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s %s: delivered %d, want %d", k.channel, k.to, got[k], n)
		}
	}
	for k, n := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s %s: %d unexpected deliveries", k.channel, k.to, n)
		}
	}
	if env.outbox.Len() != total {
		t.Errorf("outbox has %d deliveries, want %d", env.outbox.Len(), total)
	}

	// Dead letters: every malformed event, and every permanent failure.
	dl := readAll(t, env.brokers(), topics.DLQ)
	var poison, failed int
	for _, m := range dl {
		h := map[string]string{}
		for _, x := range m.Headers {
			h[x.Key] = string(x.Value)
		}
		if h[dlq.HeaderReason] == "" || h[dlq.HeaderSourceTopic] == "" || h[dlq.HeaderSourceOffset] == "" || h[dlq.HeaderError] == "" {
			t.Errorf("DLQ record without reason/source headers: %v", h)
		}
		switch h[dlq.HeaderStage] {
		case "dispatcher":
			poison++
		default:
			failed++
		}
	}
	if poison != len(malformed) {
		t.Errorf("DLQ has %d dispatcher records, want %d", poison, len(malformed))
	}
	// A permanent failure about the address suppresses it, so later
	// notifications to it are "suppressed" rather than tried and failed.
	suppressed := strings.Count(logs.String(), `"outcome":"suppressed"`)
	if failed+suppressed != permanent || failed == 0 {
		t.Errorf("DLQ has %d permanent-failure records and %d were suppressed, want %d together", failed, suppressed, permanent)
	}

	// Logs: one outcome line per record, masked addresses, no bodies.
	out := logs.String()
	for k := range want {
		// An in-app address is the person's id, logged as recipient_id
		// with every channel's outcome: a key, not contact data.
		if strings.Contains(out, k.to) && k.channel != "push" && k.channel != "inapp" {
			t.Errorf("log contains an unmasked address %s", k.to)
		}
	}
	sent := 0
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, `"outcome":"sent"`) {
			continue
		}
		sent++
		var f map[string]any
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			t.Fatalf("log line is not JSON: %s", line)
		}
		for _, k := range []string{"event_id", "notification_id", "channel", "template", "outcome", "attempt", "partition", "offset", "provider_message_id", "latency_ms"} {
			if _, ok := f[k]; !ok {
				t.Errorf("outcome line without %s: %s", k, line)
				break
			}
		}
	}
	if sent != total {
		t.Errorf("%d sent log lines, want %d", sent, total)
	}

	// Metrics reflect the run.
	resp, err := http.Get("http://" + mustServe(t, env) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var mb bytes.Buffer
	mb.ReadFrom(resp.Body)
	if !strings.Contains(mb.String(), `herald_notifications_total{channel="email",outcome="sent",reason=""}`) {
		t.Error("metrics lack the email sent series")
	}
	// Where the time went, per group and topic: the dispatcher's events
	// and the email workers' records were each timed.
	for _, name := range []string{"herald_record_wait_seconds_count", "herald_handle_duration_seconds_count"} {
		for group, topic := range map[string]string{topics.GroupDispatch: env.cfg.EventsTopic, topics.Group(notification.Email): topics.Channel(notification.Email)} {
			line := fmt.Sprintf(`%s{group=%q,topic=%q} `, name, group, topic)
			i := strings.Index(mb.String(), line)
			if i < 0 {
				t.Errorf("metrics lack %s", line)
				continue
			}
			var n int
			if _, err := fmt.Sscan(mb.String()[i+len(line):], &n); err != nil || n == 0 {
				t.Errorf("%s%d (%v), want records counted", line, n, err)
			}
		}
	}
	t.Logf("%d events (+%d repeats, %d malformed, 1 unknown) → %d deliveries, %d permanent failures in %v (%.0f notifications/s incl. start-up)",
		nEvents, len(records)-nEvents-len(malformed)-1, len(malformed), total, permanent, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds())
}

func mustServe(t *testing.T, env *devEnv) string {
	srv, err := serveHTTP("127.0.0.1:0", env.fleet, env.routes)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv.Addr
}

// waitDrained waits until every herald group has committed up to the end
// of every topic it reads.
func waitDrained(t *testing.T, env *devEnv) {
	t.Helper()
	groups := map[string][]string{
		topics.GroupDispatch: {env.cfg.EventsTopic, topics.Derived}, topics.GroupAttendance: {env.cfg.EventsTopic},
		topics.GroupLive: {topics.Live},
	}
	for _, ch := range notification.Known() {
		groups[topics.Group(ch)] = []string{topics.Channel(ch), topics.Retry(ch)}
	}
	client := &kafka.Client{Addr: kafka.TCP(env.brokers()...)}
	deadline := time.Now().Add(60 * time.Second)
	for {
		lagging := ""
		for group, ts := range groups {
			for _, topic := range ts {
				ends := endOffsets(t, client, topic, env.cfg.TopicPartitions)
				req := &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: nil}}
				for p := range ends {
					req.Topics[topic] = append(req.Topics[topic], p)
				}
				resp, err := client.OffsetFetch(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range resp.Topics[topic] {
					if end := ends[p.Partition]; end > 0 && p.CommittedOffset < end {
						lagging = fmt.Sprintf("%s %s/%d at %d of %d", group, topic, p.Partition, p.CommittedOffset, end)
					}
				}
			}
		}
		if lagging == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not drained: %s", lagging)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func endOffsets(t testing.TB, client *kafka.Client, topic string, parts int) map[int]int64 {
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for p := range parts {
		req.Topics[topic] = append(req.Topics[topic], kafka.LastOffsetOf(p))
	}
	resp, err := client.ListOffsets(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int64{}
	for _, p := range resp.Topics[topic] {
		out[p.Partition] = p.LastOffset
	}
	return out
}

// readAll reads every record currently in topic.
func readAll(t *testing.T, brokers []string, topic string) []kafka.Message {
	t.Helper()
	// A transport of its own: kafka-go's shared default one caches
	// metadata for seconds, and may predate the topic.
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: tr}
	meta, err := client.Metadata(context.Background(), &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		t.Fatal(err)
	}
	var out []kafka.Message
	for _, tp := range meta.Topics {
		ends := endOffsets(t, client, topic, len(tp.Partitions))
		for _, p := range tp.Partitions {
			end := ends[p.ID]
			if end == 0 {
				continue
			}
			// Its errors are logged: once (make test, TestWebhookEndToEnd)
			// a read of a partition holding records timed out with no
			// other sign of why.
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p.ID, MaxWait: 100 * time.Millisecond,
				ErrorLogger: kafka.LoggerFunc(func(f string, a ...any) { t.Logf("kafka-go reader of %s/%d: "+f, append([]any{topic, p.ID}, a...)...) })})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			for {
				m, err := r.FetchMessage(ctx)
				if err != nil {
					t.Fatalf("read %s/%d: %v", topic, p.ID, err)
				}
				out = append(out, m)
				if m.Offset+1 >= end {
					break
				}
			}
			cancel()
			r.Close()
		}
	}
	return out
}
