package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/internal/kafkatest"
	"github.com/gymhq/herald/internal/poll"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/sim"
	"github.com/gymhq/herald/topics"
)

// Start-up against dependencies that are not there yet (docs/resilience.md,
// "Start-up"): the binary stays up, alive and unready, naming what it waits
// for, and starts working once they answer; a malformed value still stops
// it at once.

// heraldProc is `herald run` running as a process.
type heraldProc struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	exited chan error
	http   string // HERALD_HTTP_ADDR
}

// startHerald runs `herald run args...` with env (plus PATH and a free
// HERALD_HTTP_ADDR) and kills it when the test ends.
func startHerald(t *testing.T, env []string, args ...string) *heraldProc {
	t.Helper()
	p := &heraldProc{stderr: &syncBuffer{}, exited: make(chan error, 1), http: freeAddr(t)}
	p.cmd = exec.Command(buildHerald(t), append([]string{"run"}, args...)...)
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HERALD_HTTP_ADDR=" + p.http}, env...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// probe answers GET path with its status and body; status 0 while the
// server is not listening yet.
func (p *heraldProc) probe(path string) (int, string) {
	resp, err := http.Get("http://" + p.http + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// running fails the test if the process has exited.
func (p *heraldProc) running(t *testing.T) bool {
	t.Helper()
	select {
	case err := <-p.exited:
		p.exited <- err
		t.Fatalf("herald exited: %v\n%s", err, p.stderr)
	default:
	}
	return true
}

// waitProbe polls path until it answers code with a body containing every
// want, failing the test if the process exits first.
func (p *heraldProc) waitProbe(t *testing.T, timeout time.Duration, path string, code int, want ...string) string {
	t.Helper()
	var body string
	poll.Until(t, timeout, path+" answering "+strconv.Itoa(code), func() bool {
		p.running(t)
		var got int
		got, body = p.probe(path)
		if got != code {
			return false
		}
		for _, w := range want {
			if !strings.Contains(body, w) {
				return false
			}
		}
		return true
	})
	return body
}

// terminate sends SIGTERM and requires exit 0 within 10s.
func (p *heraldProc) terminate(t *testing.T) time.Duration {
	t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p.stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10s after SIGTERM\n%s", p.stderr)
	}
	return time.Since(start)
}

// TestRunWaitsForKafka: `herald run --role dispatcher` against a broker
// that is not there stays up, alive (/healthz 200) and unready (/readyz
// 503 naming HERALD_KAFKA_BROKERS, the address and the dial error), and
// logs its retries; once a broker listens on that address it creates its
// topics, joins and fans events out; SIGTERM exits 0. Before the fix it
// exited 1 within a second with "Broker Not Available".
func TestRunWaitsForKafka(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	brokerAddr := freeAddr(t)
	p := startHerald(t, []string{
		"HERALD_KAFKA_BROKERS=" + brokerAddr, "HERALD_TOPIC_PARTITIONS=1", "HERALD_TOPIC_REPLICATION=1",
		"HERALD_SESSION_TIMEOUT=6s", "HERALD_REBALANCE_TIMEOUT=6s", "HERALD_INSTANCE_ID=wait-kafka",
		"HERALD_REDIS_URL=" + redistest.Start(t).URL(), // the dispatcher's scheduler and preferences
	}, "--role", "dispatcher")

	body := p.waitProbe(t, 30*time.Second, "/readyz", http.StatusServiceUnavailable,
		"kafka "+brokerAddr+" (HERALD_KAFKA_BROKERS)", "connection refused")
	t.Logf("/readyz while Kafka is away: %s", body)
	p.waitProbe(t, 5*time.Second, "/healthz", http.StatusOK, "ok")
	// Retries, each logged naming the variable and the address.
	waiting := `"waiting for kafka ` + brokerAddr + ` (HERALD_KAFKA_BROKERS)"`
	poll.Until(t, 30*time.Second, "two logged retries", func() bool {
		p.running(t)
		return strings.Count(p.stderr.String(), waiting) >= 2
	})

	// The broker comes up on that address, with the booking service's
	// topic (herald never creates it).
	_, port, _ := net.SplitHostPort(brokerAddr)
	portN, _ := strconv.Atoi(port)
	cluster := kafkatest.Start(t, kfake.Ports(portN))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := kafkarun.EnsureTopics(ctx, cluster.Brokers(), nil, []kafkarun.TopicSpec{{Name: topics.DefaultEvents, Partitions: 1, Replication: 1}}); err != nil {
		t.Fatal(err)
	}
	p.waitProbe(t, 60*time.Second, "/readyz", http.StatusOK, "ready")
	if !strings.Contains(p.stderr.String(), `"reached kafka `+brokerAddr+` (HERALD_KAFKA_BROKERS)"`) {
		t.Errorf("no 'reached' log line")
	}

	// It works: an event is fanned out to a channel topic.
	ev := sim.New(sim.Options{Seed: 3, Prefix: "wait"}).Make("gym.booking.confirmed")
	prod := kafkarun.NewProducer(kafkarun.ProducerConfig{Brokers: cluster.Brokers()})
	defer prod.Close()
	if err := prod.Publish(ctx, queue.Message{Topic: topics.DefaultEvents, Key: ev.Key, Value: ev.Value}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 60*time.Second, "a notification of "+ev.ID, func() bool {
		for _, ch := range notification.Known() {
			found := false
			_, err := kafkarun.Scan(ctx, kafkarun.ScanConfig{Brokers: cluster.Brokers()}, topics.Channel(ch), func(m *queue.Message) error {
				found = found || bytes.Contains(m.Value, []byte(ev.ID))
				return nil
			})
			if err == nil && found {
				return true
			}
		}
		return false
	})
	t.Logf("exited %v after SIGTERM", p.terminate(t))
}

// TestRunWaitsForRedis: `herald run --role all` with Redis down at start
// stays up, alive and unready (/readyz names HERALD_REDIS_URL), then
// delivers once Redis answers; SIGTERM exits 0.
func TestRunWaitsForRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	redis := redistest.Start(t)
	env, err := newDevEnv(devOptions{KafkaAddr: "127.0.0.1:0", Partitions: 2, RedisURL: redis.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	redis.Stop()
	p := startHerald(t, runEnv(env, redis.URL(), "wait-redis"), "--role", "all")

	body := p.waitProbe(t, 30*time.Second, "/readyz", http.StatusServiceUnavailable,
		"redis "+redis.URL()+" (HERALD_REDIS_URL): dial unix", "connect:")
	t.Logf("/readyz while Redis is away: %s", body)
	p.waitProbe(t, 5*time.Second, "/healthz", http.StatusOK, "ok")
	waiting := `"waiting for redis ` + redis.URL() + ` (HERALD_REDIS_URL)"`
	poll.Until(t, 30*time.Second, "a logged retry", func() bool {
		p.running(t)
		return strings.Contains(p.stderr.String(), waiting)
	})

	if err := redis.Restart(); err != nil {
		t.Fatal(err)
	}
	p.waitProbe(t, 60*time.Second, "/readyz", http.StatusOK, "ready")
	g := sim.New(sim.Options{Seed: 5, Prefix: "waitr"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for range 5 {
		ev := g.Make("gym.booking.confirmed")
		if err := env.publishEvent(ctx, ev.Key, ev.Value); err != nil {
			t.Fatal(err)
		}
	}
	if err := env.outbox.Wait(ctx, 5); err != nil {
		t.Fatalf("delivered %d: %v\n%s", env.outbox.Len(), err, p.stderr)
	}
	t.Logf("exited %v after SIGTERM", p.terminate(t))
}

// TestRunStopsWhileWaiting: SIGTERM while waiting for a dependency exits 0
// at once.
func TestRunStopsWhileWaiting(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	p := startHerald(t, []string{"HERALD_KAFKA_BROKERS=" + freeAddr(t), "HERALD_REDIS_URL=" + redistest.Start(t).URL()}, "--role", "dispatcher")
	p.waitProbe(t, 30*time.Second, "/readyz", http.StatusServiceUnavailable, "HERALD_KAFKA_BROKERS")
	if d := p.terminate(t); d > 5*time.Second {
		t.Errorf("took %v to exit after SIGTERM while waiting", d)
	}
	if !strings.Contains(p.stderr.String(), `"stopped while waiting for dependencies"`) {
		t.Errorf("log lacks the stop while waiting:\n%s", p.stderr)
	}
}

// TestRunMalformedExitsAtOnce: a malformed address is configuration, not an
// outage: the process exits non-zero at once with one line naming the
// variable, and never serves a probe.
func TestRunMalformedExitsAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildHerald(t)
	for _, tc := range []struct {
		name, want string
		env        []string
		role       string
	}{
		{"brokers not host:port", "HERALD_KAFKA_BROKERS", []string{"HERALD_KAFKA_BROKERS=not a host:port"}, "dispatcher"},
		{"brokers without port", "HERALD_KAFKA_BROKERS", []string{"HERALD_KAFKA_BROKERS=kafka-0"}, "dispatcher"},
		{"redis URL scheme", "HERALD_REDIS_URL", []string{"HERALD_KAFKA_BROKERS=127.0.0.1:1", "HERALD_REDIS_URL=foo://",
			"HERALD_SMTP_ADDR=127.0.0.1:1", "HERALD_EMAIL_FROM=a@example.com"}, "email"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			cmd := exec.Command(bin, "run", "--role", tc.role)
			cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HERALD_HTTP_ADDR=" + freeAddr(t)}, tc.env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			start := time.Now()
			err := cmd.Run()
			took := time.Since(start)
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 {
				t.Fatalf("exit: %v, want non-zero; stderr:\n%s", err, stderr.String())
			}
			out := strings.TrimSpace(stderr.String())
			if strings.Count(out, "\n") != 0 || !strings.HasPrefix(out, "herald: "+tc.want) {
				t.Errorf("stderr %q: want one line starting with the variable %s", out, tc.want)
			}
			if took > 5*time.Second {
				t.Errorf("took %v to exit", took)
			}
			t.Logf("%s (%v)", out, took.Round(time.Millisecond))
		})
	}
}

// TestKafkaDependencyNamesTopicSettings: herald's topics asking for more
// replicas than the cluster has brokers is retried (a cluster may still be
// starting), and the error names the settings to check.
func TestKafkaDependencyNamesTopicSettings(t *testing.T) {
	cluster := kafkatest.Start(t)
	cfg := config.Defaults()
	cfg.KafkaBrokers, cfg.TopicPartitions, cfg.TopicReplication = cluster.Brokers(), 1, 3
	conn, err := kafkaConnection(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = kafkaDependency(cfg, conn).Reach(ctx)
	if err == nil || !strings.Contains(err.Error(), "HERALD_TOPIC_REPLICATION=3") {
		t.Fatalf("Reach = %v, want an error naming HERALD_TOPIC_REPLICATION=3", err)
	}
	var permanent *backoff.PermanentError
	if errors.As(err, &permanent) {
		t.Errorf("Reach = %v: a refusal, want it retried", err)
	}
	t.Log(err)
}

// processFleet is an in-process cluster and provider stand-ins on a real
// Redis, for tests that run herald as real processes: start launches
// `herald run --role all` under instance name and waits until it is
// ready.
func processFleet(t *testing.T, partitions int) (env *devEnv, redis *redistest.Server, start func(name string) *heraldProc) {
	t.Helper()
	redis = redistest.Start(t)
	env, err := newDevEnv(devOptions{KafkaAddr: "127.0.0.1:0", Partitions: partitions, RedisURL: redis.URL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)
	return env, redis, func(name string) *heraldProc {
		p := startHerald(t, runEnv(env, redis.URL(), name), "--role", "all")
		p.waitProbe(t, time.Minute, "/readyz", 200)
		return p
	}
}
