package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/suppress"
)

// TestToolCommands runs `herald dlq` and `herald suppressions` as an
// operator would: bad input exits 2 with one line naming what is wrong; an
// unreachable Kafka or Redis exits 1 with one line naming the variable; the
// suppression list round-trips through a real redis-server, masked unless
// asked.
func TestToolCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildHerald(t)
	rs := redistest.Start(t)
	if err := suppress.NewRedis(rs.Client(), "", nil).Add(context.Background(), "sms", "+447700900123", "unsubscribed"); err != nil {
		t.Fatal(err)
	}
	run := func(env []string, args ...string) (code int, stdout, stderr string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), o.String(), e.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, o.String(), e.String()
	}
	redisEnv := []string{"HERALD_REDIS_URL=" + rs.URL()}
	bad := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"dlq without brokers", nil, []string{"dlq", "inspect"}, "HERALD_KAFKA_BROKERS"},
		{"dlq bad since", nil, []string{"dlq", "replay", "--kafka-brokers", "127.0.0.1:1", "--since", "yesterday"}, "--since"},
		{"dlq bad channel", nil, []string{"dlq", "replay", "--kafka-brokers", "127.0.0.1:1", "--channel", "fax"}, "--channel"},
		{"dlq unknown subcommand", nil, []string{"dlq", "purge", "--kafka-brokers", "127.0.0.1:1"}, `unknown subcommand "purge"`},
		{"suppressions bad url", []string{"HERALD_REDIS_URL=ftp://x"}, []string{"suppressions", "list"}, "HERALD_REDIS_URL"},
		{"suppressions bad channel", redisEnv, []string{"suppressions", "list", "--channel", "fax"}, "unknown channel"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(tt.env, tt.args...)
			if code != 2 || !strings.Contains(stderr, tt.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
				t.Errorf("exit %d, stderr %q: want 2 and one line mentioning %q", code, stderr, tt.want)
			}
		})
	}

	// Kafka or Redis unreachable: a one-shot command fails at once, exit 1,
	// with one line naming the variable and the address (before, trace
	// printed one kafka-go line per topic and suppressions go-redis's own
	// retry lines, none naming the variable).
	unreachable := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"trace", []string{"HERALD_KAFKA_BROKERS=127.0.0.1:1"}, []string{"trace", "evt_x"}, "herald trace: kafka 127.0.0.1:1 (HERALD_KAFKA_BROKERS): "},
		{"dlq inspect", []string{"HERALD_KAFKA_BROKERS=127.0.0.1:1"}, []string{"dlq", "inspect"}, "herald dlq inspect: kafka 127.0.0.1:1 (HERALD_KAFKA_BROKERS): "},
		{"dlq replay", []string{"HERALD_KAFKA_BROKERS=127.0.0.1:1"}, []string{"dlq", "replay"}, "herald dlq replay: kafka 127.0.0.1:1 (HERALD_KAFKA_BROKERS): "},
		{"suppressions", []string{"HERALD_REDIS_URL=redis://:s3cret-pw@127.0.0.1:1/0"}, []string{"suppressions", "list"}, "herald suppressions list: redis redis://:***@127.0.0.1:1/0 (HERALD_REDIS_URL): "},
	}
	for _, tt := range unreachable {
		t.Run(tt.name+" unreachable", func(t *testing.T) {
			code, _, stderr := run(tt.env, tt.args...)
			line := strings.TrimSpace(stderr)
			if code != 1 || !strings.HasPrefix(line, tt.want) || !strings.Contains(line, "connection refused") || strings.Contains(line, "\n") || strings.Contains(line, "s3cret") {
				t.Errorf("exit %d, stderr %q: want 1 and one line starting %q, saying why, without the password", code, stderr, tt.want)
			}
		})
	}

	code, out, _ := run(redisEnv, "suppressions", "list")
	if code != 0 || !strings.Contains(out, "+44********23") || strings.Contains(out, "+447700900123") || !strings.Contains(out, "unsubscribed") {
		t.Errorf("list: exit %d\n%s", code, out)
	}
	code, out, _ = run(redisEnv, "suppressions", "list", "--unmasked", "--json", "--channel", "sms")
	if code != 0 || !strings.Contains(out, `"address": "+447700900123"`) {
		t.Errorf("list --unmasked --json: exit %d\n%s", code, out)
	}
	// Flags after the address, as herald trace takes them after the id.
	code, out, _ = run(redisEnv, "suppressions", "remove", "+447700900123", "--channel", "sms")
	if code != 0 || !strings.Contains(out, "removed sms +44********23") {
		t.Errorf("remove: exit %d\n%s", code, out)
	}
	code, _, stderr := run(redisEnv, "suppressions", "remove", "+447700900123")
	if code != 1 || !strings.Contains(stderr, "not suppressed") {
		t.Errorf("second remove: exit %d, %q", code, stderr)
	}
}
