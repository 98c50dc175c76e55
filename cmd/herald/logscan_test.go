package main

import (
	"bytes"
	"context"
	"encoding/json"
	goredis "github.com/redis/go-redis/v9"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/gymhq/herald/channels/inapp"
	"github.com/gymhq/herald/feed"
	"github.com/gymhq/herald/internal/kafkatest"
	"github.com/gymhq/herald/internal/poll"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/sim"
	"github.com/gymhq/herald/sinks"
	"github.com/gymhq/herald/sinks/fcmfake"
	"github.com/gymhq/herald/sinks/smtpsink"
	"github.com/gymhq/herald/sinks/twiliofake"
)

var emailLike = regexp.MustCompile(`[A-Za-z0-9._%+*-]+@+[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+`)

// TestLogsHoldNoSecretsAddressesOrBodies runs the real binary, every
// secret configured (SMTP password, Twilio token, FCM service-account key,
// Redis password, Kafka SASL password) and every dependency authenticating
// with them, through successful sends, transient and permanent provider
// errors, dead-lettered events — including invalid addresses — and bad
// configuration. It captures everything the process writes and scans every
// line for the secrets, for any recipient's email address or phone number
// in clear, and for message bodies.
func TestLogsHoldNoSecretsAddressesOrBodies(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	const (
		kafkaPW  = "kafka-Sasl-pw-7781"
		redisPW  = "redis-Acl-pw-5523"
		smtpPW   = "smtp-Auth-pw-9034"
		jwtKey   = "gateway-Jwt-key-5512-0123456789abcdef"
		twilioTk = "twilioToken0123456789abcdef4455"
		sid      = "AC11112222333344445555666677778888"
	)
	bin := buildHerald(t)
	dir := t.TempDir()
	writeSecret := func(name, v string) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}

	cluster := kafkatest.Start(t, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "herald", kafkaPW))
	redis := redistest.StartWith(t, "--requirepass", redisPW)
	outbox := sinks.NewOutbox(0)
	smtp, err := smtpsink.Start(outbox, smtpsink.Options{Username: "herald", Password: smtpPW, AllowInsecureAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	defer smtp.Close()
	twilio := twiliofake.New(outbox, twiliofake.Options{AccountSID: sid, AuthToken: twilioTk})
	twURL, stopTw, err := sinks.ServeLocal(twilio)
	if err != nil {
		t.Fatal(err)
	}
	defer stopTw()
	fcm := fcmfake.New(outbox, fcmfake.Options{ProjectID: "herald-logscan"})
	fcmURL, stopFCM, err := sinks.ServeLocal(fcm)
	if err != nil {
		t.Fatal(err)
	}
	defer stopFCM()
	creds, err := fcmfake.ServiceAccountJSON(fcmURL + "/token")
	if err != nil {
		t.Fatal(err)
	}
	if err := fcm.TrustServiceAccount(creds); err != nil {
		t.Fatal(err)
	}
	credFile := filepath.Join(dir, "fcm.json")
	if err := os.WriteFile(credFile, creds, 0o600); err != nil {
		t.Fatal(err)
	}

	sec := kafkarun.Security{SASLMechanism: kafkarun.SASLScramSHA512, Username: "herald", Password: kafkaPW}
	conn, err := sec.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	brokers := cluster.Brokers()
	if err := kafkarun.EnsureTopics(ctx, brokers, conn.Transport, []kafkarun.TopicSpec{{Name: "gym.bookings.v1", Partitions: 2, Replication: 1}}); err != nil {
		t.Fatal(err)
	}
	prod := kafkarun.NewProducer(kafkarun.ProducerConfig{Brokers: brokers, Transport: conn.Transport})
	defer prod.Close()

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	httpAddr := ln.Addr().String()
	ln.Close()
	goodEnv := []string{
		"PATH=" + os.Getenv("PATH"),
		"HERALD_KAFKA_BROKERS=" + strings.Join(brokers, ","),
		"HERALD_KAFKA_SASL_MECHANISM=SCRAM-SHA-512", "HERALD_KAFKA_SASL_USERNAME=herald",
		"HERALD_KAFKA_SASL_PASSWORD_FILE=" + writeSecret("kafka-pw", kafkaPW),
		"HERALD_REDIS_URL=" + redis.URL(), "HERALD_REDIS_PASSWORD=" + redisPW,
		"HERALD_TOPIC_PARTITIONS=2", "HERALD_TOPIC_REPLICATION=1",
		"HERALD_SMTP_ADDR=" + smtp.Addr(), "HERALD_SMTP_TLS=none", "HERALD_EMAIL_FROM=Gym <bookings@herald.test>",
		"HERALD_SMTP_USERNAME=herald", "HERALD_SMTP_PASSWORD_FILE=" + writeSecret("smtp-pw", smtpPW),
		"HERALD_TWILIO_ACCOUNT_SID=" + sid, "HERALD_TWILIO_AUTH_TOKEN=" + twilioTk,
		"HERALD_TWILIO_FROM=+15005550006", "HERALD_TWILIO_API_URL=" + twURL,
		"HERALD_FCM_PROJECT_ID=herald-logscan", "HERALD_FCM_CREDENTIALS_FILE=" + credFile, "HERALD_FCM_ENDPOINT=" + fcmURL,
		"HERALD_GATEWAY_JWT_SECRET_FILE=" + writeSecret("jwt", jwtKey), "HERALD_GATEWAY_ADDR=127.0.0.1:0",
		"HERALD_HTTP_ADDR=" + httpAddr, "HERALD_INSTANCE_ID=logscan",
		"HERALD_SESSION_TIMEOUT=6s", "HERALD_REBALANCE_TIMEOUT=6s", "HERALD_LOG_LEVEL=debug",
	}

	// The workload, with every kind of failure on the way.
	g := sim.New(sim.Options{Seed: 31, Members: 30, Prefix: "ls"})
	var skip []string
	var sample []sim.Event
	for range 40 {
		sample = append(sample, g.Next())
	}
	pre := newWorkload(t, nil, 0)
	for _, ev := range sample {
		pre.add(t, ev)
	}
	var anEmail, aPhone, aToken string
	for k := range pre.want {
		switch {
		case k.channel == "email" && anEmail == "":
			anEmail = k.to
		case k.channel == "sms" && aPhone == "":
			aPhone = k.to
		case k.channel == "push" && aToken == "":
			aToken = k.to
		}
	}
	if anEmail == "" || aPhone == "" || aToken == "" {
		t.Fatal("workload lacks a channel")
	}
	skip = append(skip, anEmail, aPhone, aToken)
	if err := smtp.FailAddress(anEmail, 550, "5.1.1", "no such user "+anEmail); err != nil {
		t.Fatal(err)
	}
	if err := smtp.FailNext(2, 451, "4.3.0", "try again"); err != nil {
		t.Fatal(err)
	}
	twilio.FailNumber(aPhone, 400, 21211, "")
	twilio.FailNext(2, 503, 0)
	fcm.Unregister(aToken)
	fcm.FailNext(2, 503, "UNAVAILABLE")
	w := newWorkload(t, nil, 0)
	for _, ev := range sample {
		w.add(t, ev, skip...)
	}
	// Invalid addresses cost their own message (refused, dead-lettered by
	// recipient id); the rest of those events is delivered.
	editMember := func(b []byte, key string, edit func(string) string) []byte {
		var ev map[string]any
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatal(err)
		}
		m := ev["data"].(map[string]any)["member"].(map[string]any)
		m[key] = edit(m[key].(string))
		out, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	refused := [][]byte{
		editMember(g.Make("gym.booking.confirmed").Value, "email", func(s string) string { return strings.Replace(s, "@", "@@", 1) }),
		editMember(g.Make("gym.waitlist.promoted").Value, "phone", func(s string) string { return "00" + strings.TrimPrefix(s, "+") }),
	}
	for _, b := range refused {
		w.add(t, sim.Event{ID: "refused", Key: []byte("cls_bad"), Value: b}, skip...)
	}
	bad := [][]byte{
		[]byte(`{"specversion":"1.0",`),
	}

	cmd := exec.Command(bin, "run", "--role", "all")
	cmd.Env = goodEnv
	var stderr, stdout syncBuffer
	cmd.Stderr, cmd.Stdout = &stderr, &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	}()
	poll.Until(t, 60*time.Second, "herald ready", func() bool {
		select {
		case err := <-exited:
			t.Fatalf("exited: %v\n%s", err, stderr.String())
		default:
		}
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	var msgs []queue.Message
	for _, ev := range w.events {
		msgs = append(msgs, queue.Message{Topic: "gym.bookings.v1", Key: ev.Key, Value: ev.Value})
	}
	for _, b := range bad {
		msgs = append(msgs, queue.Message{Topic: "gym.bookings.v1", Key: []byte("cls_bad"), Value: b})
	}
	if err := prod.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	// The providers' stand-ins get every delivery but the in-app ones,
	// which land in the feeds in Redis.
	feeds := w.channelTotal(string(inapp.Name))
	if err := outbox.Wait(ctx, w.total-feeds); err != nil {
		t.Fatalf("delivered %d of %d: %v\n%s", outbox.Len(), w.total-feeds, err, stderr.String())
	}
	rc := goredis.NewClient(&goredis.Options{Network: "unix", Addr: redis.Addr(), Password: redisPW})
	defer rc.Close()
	fs := feed.NewRedis(rc, feed.Limits{})
	poll.Until(t, 30*time.Second, "every in-app item in its feed", func() bool {
		n := 0
		for k, c := range w.want {
			if k.channel == string(inapp.Name) {
				items, _, err := fs.List(ctx, k.to, 200)
				if err != nil || len(items) < c {
					return false
				}
				n += len(items)
			}
		}
		return n == feeds
	})
	// The feeds' items join the stand-ins' deliveries in the tally below.
	for k := range w.want {
		if k.channel == string(inapp.Name) {
			items, _, _ := fs.List(ctx, k.to, 200)
			for _, it := range items {
				outbox.Add(sinks.Delivery{Channel: k.channel, To: k.to, Title: it.Title, Text: it.Body, NotificationID: it.ID, At: it.CreatedAt})
			}
		}
	}
	// The permanent failures are logged when they reach the DLQ; wait for
	// their lines rather than for time.
	poll.Until(t, 30*time.Second, "permanent failures and dead letters logged", func() bool {
		return strings.Count(stderr.String(), `"notification failed"`) >= 3 && strings.Count(stderr.String(), `"event dead-lettered"`) >= len(bad) &&
			strings.Count(stderr.String(), `"recipient address refused"`) >= len(refused)
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err != nil {
		t.Fatalf("exit: %v", err)
	}
	logs := stderr.String() + stdout.String()
	assertExactlyOnce(t, "deliveries", count(&devEnv{outbox: outbox}, w))

	// Bad configuration, with every secret set: the one error line.
	for _, extra := range [][]string{
		{"HERALD_SMTP_TLS=maybe"},
		{"HERALD_REDIS_PASSWORD=", "HERALD_REDIS_URL=redis://:" + redisPW + "@127.0.0.1:notaport/0"},
		{"HERALD_REDIS_PASSWORD=wrong-" + redisPW},
		{"HERALD_KAFKA_SASL_PASSWORD_FILE=" + writeSecret("kafka-wrong", "wrong-"+kafkaPW)},
	} {
		c := exec.Command(bin, "run", "--role", "all")
		c.Env = append(append([]string(nil), goodEnv...), extra...)
		var out bytes.Buffer
		c.Stderr, c.Stdout = &out, &out
		if err := c.Run(); err == nil {
			t.Errorf("%v: started", extra)
		}
		logs += out.String()
	}

	// What must not appear.
	forbidden := map[string]string{
		kafkaPW: "Kafka password", redisPW: "Redis password", smtpPW: "SMTP password", jwtKey: "gateway JWT key", twilioTk: "Twilio token",
	}
	var sa struct {
		PrivateKey   string `json:"private_key"`
		PrivateKeyID string `json:"private_key_id"`
	}
	if err := json.Unmarshal(creds, &sa); err != nil {
		t.Fatal(err)
	}
	forbidden[sa.PrivateKeyID] = "FCM private key id"
	for _, line := range strings.Split(sa.PrivateKey, "\n") {
		if len(line) >= 16 && !strings.HasPrefix(line, "-----") {
			forbidden[line] = "FCM private key"
		}
	}
	all := newWorkload(t, nil, 0)
	for _, ev := range sample {
		all.add(t, ev)
	}
	for k := range all.want {
		if k.channel == "email" || k.channel == "sms" {
			forbidden[k.to] = "recipient " + k.channel + " address"
		}
	}
	for _, b := range refused {
		var ev struct {
			Data struct {
				Member struct{ Email, Phone string } `json:"member"`
			} `json:"data"`
		}
		if err := json.Unmarshal(b, &ev); err == nil {
			forbidden[ev.Data.Member.Email] = "invalid email address of a refused recipient"
			forbidden[strings.TrimPrefix(ev.Data.Member.Phone, "00")] = "invalid phone number of a refused recipient"
		}
	}
	bodies := 0
	for _, d := range outbox.All() {
		for _, s := range []string{d.Text, d.HTML, d.Subject, d.Title} {
			// Whole bodies, and each long line of them.
			for _, part := range append([]string{s}, strings.Split(s, "\n")...) {
				if part = strings.TrimSpace(part); len(part) >= 24 {
					forbidden[part] = "message body (" + d.Channel + ")"
					bodies++
				}
			}
		}
	}
	delete(forbidden, "")

	lines := strings.Split(logs, "\n")
	found := 0
	// Beyond the known addresses: anything shaped like an email address
	// that is not masked (x***@domain) or herald's own sender.
	for _, line := range lines {
		for _, a := range emailLike.FindAllString(line, -1) {
			if !strings.Contains(a, "***@") && a != "bookings@herald.test" && !strings.HasPrefix(a, "ntf_") { // Message-IDs are ids
				found++
				t.Errorf("log line holds an unmasked email address %q:\n%s", a, line)
			}
		}
	}
	for _, line := range lines {
		for s, what := range forbidden {
			if strings.Contains(line, s) {
				found++
				if found <= 20 {
					t.Errorf("log line holds a %s:\n%s", what, line)
				}
			}
		}
	}
	t.Logf("scanned %d log lines for %d forbidden strings (%d body fragments from %d deliveries): %d found",
		len(lines), len(forbidden), bodies, outbox.Len(), found)
	if len(lines) < 50 {
		t.Errorf("only %d log lines: the scan proves little", len(lines))
	}
}
