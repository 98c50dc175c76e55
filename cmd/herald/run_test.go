package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/sim"
)

// buildHerald returns the herald binary, built once per test run
// (statically, CGO_ENABLED=0), for the tests that run it as a process.
func buildHerald(t *testing.T) string {
	t.Helper()
	heraldBinary.once.Do(func() {
		dir, err := os.MkdirTemp("", "herald-test-bin")
		if err != nil {
			heraldBinary.err = err
			return
		}
		heraldBinary.dir = dir
		bin := filepath.Join(dir, "herald")
		cmd := exec.Command("go", "build", "-o", bin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			heraldBinary.err = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		heraldBinary.path = bin
	})
	if heraldBinary.err != nil {
		t.Fatal(heraldBinary.err)
	}
	return heraldBinary.path
}

var heraldBinary struct {
	once      sync.Once
	dir, path string
	err       error
}

// TestMain removes the binary buildHerald built.
func TestMain(m *testing.M) {
	// The exactly-once workloads plan with the planner and count what
	// arrives; caps would drop what their few people get too often. Caps
	// are tested on their own (worker, TestFrequencyCapsEndToEnd).
	devTweak = func(c *config.Config) { c.Schedule.FrequencyCaps = config.Off }
	code := m.Run()
	if heraldBinary.dir != "" {
		os.RemoveAll(heraldBinary.dir)
	}
	os.Exit(code)
}

// TestRunBadConfig: invalid configuration stops the process at start with
// one line naming the variable, and a non-zero exit.
func TestRunBadConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildHerald(t)
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"no brokers", nil, []string{"--role", "dispatcher"}, "HERALD_KAFKA_BROKERS"},
		// Every missing variable at once, not one per start.
		{"nothing set", nil, []string{"--role", "all"}, "HERALD_KAFKA_BROKERS, HERALD_REDIS_URL, HERALD_SMTP_ADDR, HERALD_EMAIL_FROM, " +
			"HERALD_TWILIO_ACCOUNT_SID, HERALD_TWILIO_AUTH_TOKEN, HERALD_TWILIO_MESSAGING_SERVICE_SID (or HERALD_TWILIO_FROM), " +
			"HERALD_FCM_PROJECT_ID, HERALD_FCM_CREDENTIALS_FILE, HERALD_GATEWAY_JWKS_FILE (or HERALD_GATEWAY_JWT_SECRET): required for role all"},
		{"bad tls mode", []string{"HERALD_KAFKA_BROKERS=k:9092", "HERALD_REDIS_URL=redis://r:6379/0", "HERALD_SMTP_ADDR=s:587", "HERALD_EMAIL_FROM=a@b.c", "HERALD_SMTP_TLS=maybe"}, []string{"--role", "email"}, "HERALD_SMTP_TLS"},
		{"bad role", []string{"HERALD_KAFKA_BROKERS=k:9092"}, []string{"--role", "fax"}, "role"},
		{"missing secret file", []string{"HERALD_KAFKA_BROKERS=k:9092", "HERALD_REDIS_URL_FILE=/nonexistent/redis-url"}, []string{"--role", "push"}, "HERALD_REDIS_URL_FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, append([]string{"run"}, tt.args...)...)
			cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, tt.env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() == 0 {
				t.Fatalf("exit: %v, want non-zero", err)
			}
			out := strings.TrimSpace(stderr.String())
			if strings.Count(out, "\n") != 0 || !strings.Contains(out, tt.want) {
				t.Errorf("stderr %q: want one line naming %s", out, tt.want)
			}
			if strings.Contains(out, "panic") || strings.Contains(out, "goroutine") {
				t.Errorf("panicked: %s", out)
			}
		})
	}
}

// runEnv is the environment of `herald run --role all` against env's
// Kafka and provider sinks and the Redis at redisURL. The SMTP sink's
// certificate is self-signed, so the process uses no SMTP TLS; everything
// else is the production code path.
func runEnv(env *devEnv, redisURL, instance string) []string {
	c := env.cfg
	return []string{
		"HERALD_KAFKA_BROKERS=" + strings.Join(c.KafkaBrokers, ","),
		"HERALD_REDIS_URL=" + redisURL,
		"HERALD_TOPIC_PARTITIONS=" + strconv.Itoa(c.TopicPartitions), "HERALD_TOPIC_REPLICATION=1",
		"HERALD_SMTP_ADDR=" + c.SMTPAddr, "HERALD_SMTP_TLS=none", "HERALD_EMAIL_FROM=" + c.EmailFrom,
		"HERALD_TWILIO_ACCOUNT_SID=" + c.TwilioAccountSID, "HERALD_TWILIO_AUTH_TOKEN=" + c.TwilioAuthToken,
		"HERALD_TWILIO_FROM=" + c.TwilioFrom, "HERALD_TWILIO_API_URL=" + c.TwilioAPIURL,
		"HERALD_FCM_PROJECT_ID=" + c.FCMProjectID, "HERALD_FCM_CREDENTIALS_FILE=" + c.FCMCredentialsFile,
		"HERALD_FCM_ENDPOINT=" + c.FCMEndpoint,
		"HERALD_GATEWAY_JWT_SECRET=" + c.Gateway.JWTSecret, "HERALD_GATEWAY_ADDR=127.0.0.1:0",
		"HERALD_INSTANCE_ID=" + instance,
		"HERALD_SESSION_TIMEOUT=6s", "HERALD_REBALANCE_TIMEOUT=6s",
		"HERALD_FREQUENCY_CAPS=off", // as devSettings, for the same workloads
	}
}

// TestRunSIGTERM starts `herald run --role all` as a real process against
// an in-process cluster, a real redis-server and the provider sinks, waits
// for it to be ready and deliver, then sends SIGTERM: it must drain, leave
// the group and exit 0.
func TestRunSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildHerald(t)
	redis := redistest.Start(t)
	env, err := newDevEnv(devOptions{KafkaAddr: "127.0.0.1:0", Partitions: 2, RedisURL: redis.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	httpAddr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "run", "--role", "all")
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HERALD_HTTP_ADDR=" + httpAddr}, runEnv(env, redis.URL(), "proc-test")...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
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

	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("exited before ready: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("never ready\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	g := sim.New(sim.Options{Seed: 7, Prefix: "proc"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for range 20 {
		ev := g.Make("gym.booking.confirmed")
		if err := env.publishEvent(ctx, ev.Key, ev.Value); err != nil {
			t.Fatal(err)
		}
	}
	if err := env.outbox.Wait(ctx, 20); err != nil {
		t.Fatalf("delivered %d: %v\n%s", env.outbox.Len(), err, stderr.String())
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("did not exit after SIGTERM\n%s", stderr.String())
	}
	for _, want := range []string{`"left consumer group"`, `"drained and left the group; bye"`} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("log lacks %s", want)
		}
	}
}
