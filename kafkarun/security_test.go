package kafkarun_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/gymhq/herald/internal/kafkatest"
	"github.com/gymhq/herald/internal/testpki"
	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/queue"
)

// roundTrip creates a topic, produces a record and consumes it through a
// consumer group, every connection made with sec.
func roundTrip(t *testing.T, brokers []string, sec kafkarun.Security) error {
	t.Helper()
	conn, err := sec.Build()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := kafkarun.EnsureTopics(ctx, brokers, conn.Transport, []kafkarun.TopicSpec{{Name: "secure", Partitions: 1, Replication: 1}}); err != nil {
		return err
	}
	p := kafkarun.NewProducer(kafkarun.ProducerConfig{Brokers: brokers, Transport: conn.Transport})
	defer p.Close()
	if err := p.Publish(ctx, queue.Message{Topic: "secure", Key: []byte("k"), Value: []byte("hello")}); err != nil {
		return err
	}
	got := make(chan string, 1)
	c, err := kafkarun.NewConsumer(kafkarun.ConsumerConfig{
		Brokers: brokers, GroupID: "secure-group", Topics: []string{"secure"}, Dialer: conn.Dialer,
		SessionTimeout: 6 * time.Second, HeartbeatInterval: 500 * time.Millisecond, RebalanceTimeout: 6 * time.Second,
	}, func(_ context.Context, m *queue.Message) error {
		select {
		case got <- string(m.Value):
		default:
		}
		return nil
	})
	if err != nil {
		return err
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(rctx) }()
	select {
	case v := <-got:
		if v != "hello" {
			t.Errorf("consumed %q", v)
		}
	case <-ctx.Done():
		t.Error("consumer received nothing")
	}
	stop()
	if err := <-done; err != nil {
		return err
	}
	// The operator tools' reader and the lag poller connect the same way.
	n := 0
	if _, err := kafkarun.Scan(ctx, kafkarun.ScanConfig{Brokers: brokers, Dialer: conn.Dialer, Transport: conn.Transport}, "secure",
		func(*queue.Message) error { n++; return nil }); err != nil {
		return fmt.Errorf("scan: %w", err)
	} else if n != 1 {
		t.Errorf("scan read %d records, want 1", n)
	}
	var lags []kafkarun.PartitionLag
	lp, err := kafkarun.NewLagPoller(kafkarun.LagConfig{
		Brokers: brokers, Transport: conn.Transport, Groups: map[string][]string{"secure-group": {"secure"}},
		Report: func(l kafkarun.PartitionLag) { lags = append(lags, l) },
	})
	if err != nil {
		return err
	}
	if err := lp.Poll(ctx); err != nil {
		return fmt.Errorf("lag poll: %w", err)
	}
	if len(lags) != 1 {
		t.Errorf("lag poll reported %d partitions, want 1", len(lags))
	}
	return nil
}

func TestSecurityConnectsEveryClient(t *testing.T) {
	pki := testpki.New(t, "kafka.test")
	mtls := pki.MutualServer()
	for _, tc := range []struct {
		name string
		opts []kfake.Opt
		sec  kafkarun.Security
	}{
		{"SASL PLAIN over mutual TLS with a private CA and server name",
			[]kfake.Opt{kfake.EnableSASL(), kfake.Superuser("PLAIN", "herald", "pl41n-secret"), kfake.TLS(mtls)},
			kafkarun.Security{SASLMechanism: kafkarun.SASLPlain, Username: "herald", Password: "pl41n-secret",
				TLS: true, CAFile: pki.CAFile, CertFile: pki.CertFile, KeyFile: pki.KeyFile, ServerName: "kafka.test", ClientID: "herald-test"}},
		{"SASL SCRAM-SHA-256",
			[]kfake.Opt{kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "herald", "scr4m-256")},
			kafkarun.Security{SASLMechanism: kafkarun.SASLScramSHA256, Username: "herald", Password: "scr4m-256"}},
		{"SASL SCRAM-SHA-512 over TLS",
			[]kfake.Opt{kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "herald", "scr4m-512"), kfake.TLS(pki.Server)},
			kafkarun.Security{SASLMechanism: kafkarun.SASLScramSHA512, Username: "herald", Password: "scr4m-512",
				TLS: true, CAFile: pki.CAFile, ServerName: "kafka.test"}},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			cluster := kafkatest.Start(t, tc.opts...)
			if err := roundTrip(t, cluster.Brokers(), tc.sec); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A wrong credential or an untrusted broker fails at start (topic
// creation is the first thing a worker does) with an error that says so
// and does not contain the password.
func TestSecurityRefusedAtStart(t *testing.T) {
	pki := testpki.New(t, "kafka.test")
	other := testpki.New(t, "kafka.test") // a CA that did not sign the broker
	sasl := kafkatest.Start(t, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "herald", "right-password"))
	tlsCluster := kafkatest.Start(t, kfake.TLS(pki.Server))
	for _, tc := range []struct {
		name    string
		brokers []string
		sec     kafkarun.Security
		want    string
		// refused: Refused says so, and a worker stops instead of waiting.
		refused bool
	}{
		{"wrong password", sasl.Brokers(), kafkarun.Security{SASLMechanism: kafkarun.SASLScramSHA256, Username: "herald", Password: "wrong-password"}, "SASL", true},
		// The broker answers no request of a client that skips SASL, which
		// kafka-go reports as Broker Not Available: it cannot be told from
		// a broker going away, so a worker waits, unready, saying so.
		{"no SASL against a SASL cluster", sasl.Brokers(), kafkarun.Security{}, "", false},
		{"untrusted CA", tlsCluster.Brokers(), kafkarun.Security{TLS: true, CAFile: other.CAFile, ServerName: "kafka.test"}, "certificate", true},
		{"server name mismatch", tlsCluster.Brokers(), kafkarun.Security{TLS: true, CAFile: pki.CAFile}, "certificate", true},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			conn, err := tc.sec.Build()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err = conn.Reach(ctx, tc.brokers)
			if err == nil {
				err = kafkarun.EnsureTopics(ctx, tc.brokers, conn.Transport, []kafkarun.TopicSpec{{Name: "x", Partitions: 1, Replication: 1}})
			}
			if err == nil {
				t.Fatal("connected")
			}
			if kafkarun.Refused(err) != tc.refused {
				t.Errorf("Refused(%q) = %v, want %v", err, !tc.refused, tc.refused)
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "wrong-password") {
				t.Errorf("error %q: want it to mention %q and not the password", err, tc.want)
			}
			t.Logf("%v", err)
		})
	}
}

func TestSecurityValidate(t *testing.T) {
	pki := testpki.New(t, "kafka.test")
	for _, tc := range []struct {
		sec  kafkarun.Security
		want string
	}{
		{kafkarun.Security{SASLMechanism: "GSSAPI", Username: "u", Password: "p"}, "not one of"},
		{kafkarun.Security{SASLMechanism: "PLAIN", Username: "u"}, "user name and a password"},
		{kafkarun.Security{Username: "u", Password: "p"}, "no SASL mechanism"},
		{kafkarun.Security{TLS: true, CertFile: pki.CertFile}, "both the certificate and the key"},
		{kafkarun.Security{CAFile: pki.CAFile}, "TLS is off"},
		{kafkarun.Security{TLS: true, CAFile: filepath.Join(t.TempDir(), "missing.pem")}, "CA file"},
		{kafkarun.Security{TLS: true, CAFile: pki.KeyFile}, "no PEM certificate"},
		{kafkarun.Security{TLS: true, CertFile: pki.CertFile, KeyFile: pki.CAFile}, "client certificate"},
	} {
		_, err := tc.sec.Build()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.sec, err, tc.want)
		}
	}
	if _, err := (&kafkarun.Security{}).Build(); err != nil {
		t.Fatalf("plaintext: %v", err)
	}
	// An unreachable broker is an outage, not a configuration error:
	// TestReach.
}

// TestReach: an unreachable broker is an error that names every address
// tried, on one line, and is not a refusal (a worker waits for it); one
// broker answering is enough.
func TestReach(t *testing.T) {
	conn, err := (&kafkarun.Security{}).Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = conn.Reach(ctx, []string{"127.0.0.1:1", "127.0.0.1:2"})
	if err == nil {
		t.Fatal("reached closed ports")
	}
	if kafkarun.Refused(err) {
		t.Errorf("Refused(%q) = true for an unreachable broker, want false", err)
	}
	for _, want := range []string{"127.0.0.1:1", "127.0.0.1:2", "connection refused"} {
		if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Reach = %q, want one line containing %q", err, want)
		}
	}
	cluster := kafkatest.Start(t)
	if err := conn.Reach(ctx, append([]string{"127.0.0.1:1"}, cluster.Brokers()...)); err != nil {
		t.Errorf("Reach with one live broker: %v", err)
	}
}
