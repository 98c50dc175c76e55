package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/gymhq/herald/internal/kafkatest"
	"github.com/gymhq/herald/internal/redistest"
)

// TestRunRefusedCredentials: a wrong Kafka or Redis password stops
// `herald run` at start with a line naming the settings, without the
// password, instead of a worker that retries forever.
func TestRunRefusedCredentials(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildHerald(t)
	cluster := kafkatest.Start(t, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "herald", "kafka-right-pw"))
	redis := redistest.StartWith(t, "--requirepass", "redis-right-pw")
	email := []string{"HERALD_SMTP_ADDR=127.0.0.1:1", "HERALD_EMAIL_FROM=a@example.com", "HERALD_HTTP_ADDR=127.0.0.1:0"}
	for _, tc := range []struct {
		name, want string
		env        []string
	}{
		{"wrong Redis password", "HERALD_REDIS_PASSWORD", append([]string{
			"HERALD_KAFKA_BROKERS=" + cluster.Brokers()[0], "HERALD_REDIS_URL=" + redis.URL(), "HERALD_REDIS_PASSWORD=wrong-redis-pw"}, email...)},
		{"wrong Kafka password", "HERALD_KAFKA_SASL", append([]string{
			"HERALD_KAFKA_BROKERS=" + cluster.Brokers()[0], "HERALD_REDIS_URL=" + redis.URL(), "HERALD_REDIS_PASSWORD=redis-right-pw",
			"HERALD_KAFKA_SASL_MECHANISM=SCRAM-SHA-256", "HERALD_KAFKA_SASL_USERNAME=herald", "HERALD_KAFKA_SASL_PASSWORD=wrong-kafka-pw"}, email...)},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			cmd := exec.Command(bin, "run", "--role", "email")
			cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, tc.env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 {
				t.Fatalf("exit: %v, want non-zero; stderr:\n%s", err, stderr.String())
			}
			out := strings.TrimSpace(stderr.String())
			var line string
			for _, l := range strings.Split(out, "\n") {
				if strings.Contains(l, tc.want) {
					line = l
				}
			}
			if line == "" || strings.Contains(out, "wrong-") || strings.Contains(out, "right-pw") {
				t.Errorf("stderr %q: want a line naming %s and no password", out, tc.want)
			}
			t.Logf("%s", line)
		})
	}
}
