//go:build chaos

package chaos

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gymhq/herald/channels/inapp"
	"github.com/gymhq/herald/dispatcher"
	"github.com/gymhq/herald/feed"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/sinks"
	"github.com/gymhq/herald/sinks/fcmfake"
	"github.com/gymhq/herald/sinks/smtpsink"
	"github.com/gymhq/herald/sinks/twiliofake"
	"github.com/gymhq/herald/templates"
	"github.com/gymhq/herald/topics"
)

const (
	partitions = 6
	// maxInFlight per consumer (HERALD_MAX_IN_FLIGHT): with three channel
	// roles per process it bounds the sends one kill can catch between the
	// provider's acceptance and the sent key (the admitted window).
	maxInFlight = 32
)

// step is one action of a schedule, at an offset from the start of the
// event stream.
type step struct {
	at     time.Duration
	action string // "kill", "term", "add"
	proc   int
}

// scenario is one chaos run's shape.
type scenario struct {
	name      string
	schedule  []step
	streamFor time.Duration
	eventRate int           // events per second
	latency   time.Duration // every provider's answer time
	// recoverWithin bounds the time from the last schedule step until every
	// notification was delivered at least once.
	recoverWithin time.Duration
	// env is added to every process's environment.
	env []string
}

// mixed: three SIGKILLs and two SIGTERMs across the fleet, each killed
// process restarted, and one more process added.
var mixed = scenario{
	name: "mixed",
	schedule: []step{
		{5 * time.Second, "kill", 0},
		{10 * time.Second, "term", 1},
		{14 * time.Second, "add", 3},
		{17 * time.Second, "kill", 2},
		{21 * time.Second, "term", 0},
		{25 * time.Second, "kill", 1},
	},
	streamFor: 30 * time.Second, eventRate: 100, recoverWithin: 65 * time.Second,
	env: []string{"HERALD_SESSION_TIMEOUT=6s", "HERALD_REBALANCE_TIMEOUT=6s", "HERALD_HEARTBEAT_INTERVAL=500ms"},
}

// burst: a crash loop. One of three processes is SIGKILLed and restarted
// every 6 s for the first minute (nine kills, each process killed three
// times), while events stream for 40 s to 20 ms providers. Every consumer
// group must re-form after the last kill, and everything must arrive
// within recoverWithin of it. The processes run with herald's production
// defaults for the group protocol (10 s session and rebalance timeouts),
// so that kills come faster than a rebalance can finish.
var burst = scenario{
	name:      "burst",
	schedule:  burstSchedule(9, 6*time.Second),
	streamFor: 40 * time.Second, eventRate: 50, latency: 20 * time.Millisecond,
	recoverWithin: 45 * time.Second,
}

func burstSchedule(kills int, every time.Duration) []step {
	var s []step
	for i := range kills {
		s = append(s, step{time.Duration(i+1) * every, "kill", i % 3})
	}
	return s
}

// TestChaos runs the mixed schedule with idempotency keys, then without,
// and reports both.
func TestChaos(t *testing.T) {
	bin := buildHerald(t)
	on := runChaos(t, bin, mixed, "on")
	off := runChaos(t, bin, mixed, "off")
	summarise(t, mixed, on, off)
}

// TestChaosBurst runs the crash loop with idempotency keys.
func TestChaosBurst(t *testing.T) {
	bin := buildHerald(t)
	summarise(t, burst, runChaos(t, bin, burst, "on"))
}

func summarise(t *testing.T, sc scenario, rs ...result) {
	t.Logf("CHAOS SUMMARY %s (3 processes, %d partitions per topic, HERALD_MAX_IN_FLIGHT=%d, %d events/s for %v, providers %v)",
		sc.name, partitions, maxInFlight, sc.eventRate, sc.streamFor, sc.latency)
	for _, r := range rs {
		t.Logf("  idempotency=%-3s events=%d notifications=%d SIGKILL=%d SIGTERM=%d added=%d  lost=%d duplicates=%d duplicates/SIGKILL=%.1f recovered %.1fs after the last step",
			r.mode, r.events, r.notifications, r.sigkills, r.sigterms, r.added, r.lost, r.duplicates, float64(r.duplicates)/float64(r.sigkills), r.recovered.Seconds())
	}
}

type result struct {
	mode                      string
	events, notifications     int
	sigkills, sigterms, added int
	lost, duplicates, extras  int
	// recovered is the time from the last schedule step until every
	// notification had arrived.
	recovered time.Duration
}

func buildHerald(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "herald")
	cmd := exec.Command("go", "build", "-o", bin, "../cmd/herald")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// fleet is the processes of one run.
type fleet struct {
	t    *testing.T
	bin  string
	env  []string
	dir  string
	mode string
	seq  int
	proc map[int]*proc
}

type proc struct {
	name   string
	cmd    *exec.Cmd
	exited chan error
	log    string
}

func (f *fleet) start(i int) {
	f.t.Helper()
	f.seq++
	name := fmt.Sprintf("chaos-%s-%d-%d", f.mode, i, f.seq)
	logPath := filepath.Join(f.dir, name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		f.t.Fatal(err)
	}
	cmd := exec.Command(f.bin, "run", "--role", "all")
	cmd.Env = append(append([]string{}, f.env...), "HERALD_INSTANCE_ID="+name)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	p := &proc{name: name, cmd: cmd, exited: make(chan error, 1), log: logPath}
	go func() { p.exited <- cmd.Wait(); lf.Close() }()
	f.proc[i] = p
}

// stop sends sig to process i and waits for it to exit.
func (f *fleet) stop(i int, sig syscall.Signal) {
	f.t.Helper()
	p := f.proc[i]
	if err := p.cmd.Process.Signal(sig); err != nil {
		f.t.Fatalf("signal %s: %v", p.name, err)
	}
	select {
	case err := <-p.exited:
		if sig == syscall.SIGTERM && err != nil {
			f.t.Errorf("%s exited %v after SIGTERM, want 0\n%s", p.name, err, tail(p.log))
		}
	case <-time.After(30 * time.Second):
		f.t.Fatalf("%s did not exit within 30s of %v\n%s", p.name, sig, tail(p.log))
	}
	delete(f.proc, i)
}

func (f *fleet) stopAll() {
	for i := range f.proc {
		f.stop(i, syscall.SIGTERM)
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func runChaos(t *testing.T, bin string, sc scenario, mode string) result {
	t.Helper()
	brokers := []string{startBroker(t)}
	redis := redistest.Start(t)

	outbox := sinks.NewOutbox(0)
	smtp, err := smtpsink.Start(outbox, smtpsink.Options{Latency: sc.latency})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { smtp.Close() })
	const sid, token = "AC00000000000000000000000000000000", "chaosauthtoken00"
	twURL := serve(t, slow(sc.latency, twiliofake.New(outbox, twiliofake.Options{AccountSID: sid, AuthToken: token})))
	fcm := fcmfake.New(outbox, fcmfake.Options{ProjectID: "herald-chaos"})
	fcmURL := serve(t, slow(sc.latency, fcm))
	creds, err := fcmfake.ServiceAccountJSON(fcmURL + "/token")
	if err != nil {
		t.Fatal(err)
	}
	if err := fcm.TrustServiceAccount(creds); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if d := os.Getenv("HERALD_CHAOS_LOG_DIR"); d != "" {
		// Keep every process's log for a look afterwards.
		dir = filepath.Join(d, fmt.Sprintf("%s-%s-%d", sc.name, mode, time.Now().Unix()))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	credFile := filepath.Join(dir, "fcm.json")
	if err := os.WriteFile(credFile, creds, 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := kafkarun.EnsureTopics(ctx, brokers, nil, []kafkarun.TopicSpec{{Name: topics.DefaultEvents, Partitions: partitions, Replication: 1}}); err != nil {
		t.Fatal(err)
	}

	f := &fleet{t: t, bin: bin, dir: dir, mode: mode, proc: map[int]*proc{}, env: []string{
		"PATH=" + os.Getenv("PATH"),
		"HERALD_KAFKA_BROKERS=" + strings.Join(brokers, ","),
		"HERALD_REDIS_URL=" + redis.URL(),
		"HERALD_IDEMPOTENCY=" + mode,
		fmt.Sprintf("HERALD_TOPIC_PARTITIONS=%d", partitions), "HERALD_TOPIC_REPLICATION=1",
		"HERALD_SMTP_ADDR=" + smtp.Addr(), "HERALD_SMTP_TLS=none", "HERALD_EMAIL_FROM=Herald Gym <bookings@herald.test>",
		"HERALD_TWILIO_ACCOUNT_SID=" + sid, "HERALD_TWILIO_AUTH_TOKEN=" + token,
		"HERALD_TWILIO_FROM=+15005550006", "HERALD_TWILIO_API_URL=" + twURL,
		"HERALD_FCM_PROJECT_ID=herald-chaos", "HERALD_FCM_CREDENTIALS_FILE=" + credFile, "HERALD_FCM_ENDPOINT=" + fcmURL,
		"HERALD_HTTP_ADDR=127.0.0.1:0",
		"HERALD_GATEWAY_JWT_SECRET=chaos-gateway-key-0123456789abcdef", "HERALD_GATEWAY_ADDR=127.0.0.1:0",
		"HERALD_COMMIT_INTERVAL=200ms",
		fmt.Sprintf("HERALD_MAX_IN_FLIGHT=%d", maxInFlight),
		"HERALD_SEND_TIMEOUT=2s", "HERALD_SHUTDOWN_TIMEOUT=5s", "HERALD_IDEMPOTENCY_LEASE=3s",
		// The workload's few people would hit every frequency cap; what is
		// counted here is lost and duplicated messages.
		"HERALD_FREQUENCY_CAPS=off",
	}}
	f.env = append(f.env, sc.env...)
	defer func() {
		if t.Failed() {
			for _, p := range f.proc {
				t.Logf("--- %s log tail ---\n%s", p.name, tail(p.log))
			}
		}
		f.stopAll()
	}()
	for i := range 3 {
		f.start(i)
	}

	// Expected deliveries, keyed by channel and address: every event has
	// its own recipient, so an address names one notification.
	tpl, err := templates.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	planner := &dispatcher.Planner{Templates: tpl}
	n := int(sc.streamFor.Seconds()) * sc.eventRate
	want := map[string]string{}
	values := make([][]byte, n)
	for i := range values {
		values[i] = chaosEvent(mode, i)
		ns, err := planner.Plan(values[i])
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		for _, x := range ns {
			k := string(x.Channel) + " " + x.To
			if _, dup := want[k]; dup {
				t.Fatalf("two notifications to %s", k)
			}
			want[k] = x.ID
		}
	}

	// Stream events at a steady rate while the schedule runs.
	prod := kafkarun.NewProducer(kafkarun.ProducerConfig{Brokers: brokers})
	defer prod.Close()
	streamErr := make(chan error, 1)
	start := time.Now()
	go func() {
		const tick = 50 * time.Millisecond
		per := sc.eventRate * int(tick) / int(time.Second)
		for i, b := 0, 0; i < n; i, b = i+per, b+1 {
			time.Sleep(time.Until(start.Add(time.Duration(b) * tick)))
			var msgs []queue.Message
			for j := i; j < min(i+per, n); j++ {
				msgs = append(msgs, queue.Message{Topic: topics.DefaultEvents, Key: []byte(fmt.Sprintf("cls_%d", j%50)), Value: values[j]})
			}
			if err := prod.Publish(ctx, msgs...); err != nil {
				streamErr <- err
				return
			}
		}
		streamErr <- nil
	}()

	r := result{mode: mode, events: n, notifications: len(want)}
	for _, s := range sc.schedule {
		time.Sleep(time.Until(start.Add(s.at)))
		switch s.action {
		case "kill":
			f.stop(s.proc, syscall.SIGKILL)
			r.sigkills++
			f.start(s.proc)
		case "term":
			f.stop(s.proc, syscall.SIGTERM)
			r.sigterms++
			f.start(s.proc)
		case "add":
			f.start(s.proc)
			r.added++
		}
		t.Logf("idempotency=%s t=%v: %s process %d; %d delivered so far", mode, time.Since(start).Round(100*time.Millisecond), s.action, s.proc, outbox.Len())
	}
	if err := <-streamErr; err != nil {
		t.Fatalf("streaming events: %v", err)
	}

	// Wait until every notification arrived at least once; after a SIGKILL
	// that takes a session timeout and an idempotency lease.
	last := start.Add(sc.schedule[len(sc.schedule)-1].at)
	deadline := last.Add(sc.recoverWithin)
	// What arrived: the providers' stand-ins' deliveries, and the items in
	// the in-app feeds (Redis), which show one notification once by
	// construction — with or without idempotency keys.
	feeds := feed.NewRedis(redis.Client(), feed.Limits{})
	delivered := func() []sinks.Delivery {
		ds := outbox.All()
		for k := range want {
			if person, ok := strings.CutPrefix(k, string(inapp.Name)+" "); ok {
				items, _, err := feeds.List(ctx, person, 200)
				if err != nil {
					t.Fatalf("feed of %s: %v", person, err)
				}
				for range items {
					ds = append(ds, sinks.Delivery{Channel: string(inapp.Name), To: person})
				}
			}
		}
		return ds
	}
	for {
		if lost := count(delivered(), want).lost; lost == 0 || time.Now().After(deadline) {
			r.recovered = time.Since(last)
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Let stragglers (duplicates in flight) land before counting.
	time.Sleep(time.Second)
	c := count(delivered(), want)
	r.lost, r.duplicates, r.extras = c.lost, c.duplicates, c.extras
	t.Logf("idempotency=%s: events=%d notifications=%d delivered=%d SIGKILL=%d SIGTERM=%d lost=%d duplicates=%d unexpected=%d",
		mode, r.events, r.notifications, outbox.Len(), r.sigkills, r.sigterms, r.lost, r.duplicates, r.extras)

	if r.lost != 0 {
		t.Errorf("idempotency=%s: %d notifications not delivered within %v of the last step, e.g. %v", mode, r.lost, sc.recoverWithin, c.lostSample)
	}
	if r.extras != 0 {
		t.Errorf("idempotency=%s: %d deliveries to addresses no notification names", mode, r.extras)
	}
	if mode == "on" {
		// docs/contracts.md §3's admitted window: a process that dies after the
		// provider accepted and before the key says sent. Each kill can
		// catch at most the sends in flight in its three channel consumers.
		bound := (r.sigkills + r.sigterms) * 3 * maxInFlight
		if r.duplicates > bound {
			t.Errorf("idempotency=on: %d duplicates exceed the admitted window of %d kills × 3 channels × %d in flight = %d",
				r.duplicates, r.sigkills+r.sigterms, maxInFlight, bound)
		}
	}
	return r
}

type counts struct {
	lost, duplicates, extras int
	lostSample               []string
}

func count(ds []sinks.Delivery, want map[string]string) counts {
	got := map[string]int{}
	var c counts
	for _, d := range ds {
		k := d.Channel + " " + d.To
		if _, ok := want[k]; !ok {
			c.extras++
			continue
		}
		got[k]++
	}
	for k := range want {
		switch n := got[k]; {
		case n == 0:
			c.lost++
			if len(c.lostSample) < 5 {
				c.lostSample = append(c.lostSample, k)
			}
		case n > 1:
			c.duplicates += n - 1
		}
	}
	return c
}

// slow answers every request after d, as a provider's API does.
func slow(d time.Duration, h http.Handler) http.Handler {
	if d <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(d)
		h.ServeHTTP(w, r)
	})
}

func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // returns on Close
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// chaosEvent is event i of a run: it alternates booking confirmations
// (email + push), waitlist promotions (SMS + push) and cancellations
// (email + push), each for a member of its own, so that every delivery's
// address names exactly one notification.
func chaosEvent(mode string, i int) []byte {
	types := []string{"gym.booking.confirmed", "gym.waitlist.promoted", "gym.booking.cancelled"}
	typ := types[i%len(types)]
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"specversion":"1.0","id":"evt_chaos_%s_%d","source":"booking-service","type":%q,"time":"2026-11-23T07:15:00Z",`, mode, i, typ)
	fmt.Fprintf(&b, `"subject":"class/cls_%d","datacontenttype":"application/json","data":{"booking_id":"bkg_%d",`, i%50, i)
	fmt.Fprintf(&b, `"class":{"id":"cls_%d","name":"Spin 45","starts_at":"2026-11-25T07:00:00Z","ends_at":"2026-11-25T07:45:00Z",`, i%50)
	b.WriteString(`"time_zone":"Europe/London","location":"Shoreditch — Studio 2","capacity":24,"booked":19,"instructor":{"id":"ins_1","name":"Priya Raman"}},`)
	fmt.Fprintf(&b, `"member":{"id":"mem_%s_%d","name":"Member %d","email":"m%d.%s@chaos.example","phone":"+4477%08d","locale":"en-GB","time_zone":"Europe/London","push_tokens":["tok-%s-%d"]}`,
		mode, i, i, i, mode, i, mode, i)
	if typ == "gym.booking.cancelled" {
		b.WriteString(`,"reason":"member request"`)
	}
	b.WriteString(`}}`)
	return b.Bytes()
}
