package obs

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"testing"

	"go.uber.org/zap"
)

// TestLoggerNeverSamples: zap's production preset drops repeated lines
// after the first 100 per second; outcome lines are the audit trail and
// must all be written, in JSON.
func TestLoggerNeverSamples(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := os.Stderr
	os.Stderr = w
	log, err := NewLogger("info", "json")
	os.Stderr = stderr
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	lines := make(chan int)
	go func() {
		count := 0
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			var f map[string]any
			if json.Unmarshal(sc.Bytes(), &f) == nil && f["msg"] == "notification sent" && f["event_id"] == "evt_1" && f["ts"] != nil {
				count++
			}
		}
		lines <- count
	}()
	for range n {
		log.Info("notification sent", zap.String("event_id", "evt_1"), zap.String("outcome", OutcomeSent))
	}
	w.Close()
	if got := <-lines; got != n {
		t.Errorf("%d of %d identical outcome lines written", got, n)
	}
}

func TestMasking(t *testing.T) {
	for _, tt := range []struct{ channel, in, want string }{
		{"email", "ana.diaz@example.com", "a***@example.com"},
		{"email", "not-an-address", "***"},
		{"sms", "+447700900123", "+44********23"},
		{"sms", "+4477", "***"},
		{"push", "fcm_token_abcdef", "fcm_to***"},
	} {
		if got := MaskAddress(tt.channel, tt.in); got != tt.want {
			t.Errorf("MaskAddress(%s, %q) = %q, want %q", tt.channel, tt.in, got, tt.want)
		}
	}
}

// BenchmarkLogLine is one "notification sent" line with the fields the
// worker writes, through the process logger (NewLoggerTo), with its
// caller and without it as outcome lines are (OutcomeLogger):
// to io.Discard, as the bench logs, and to a pipe that another process
// drains, as a container's stderr is.
func BenchmarkLogLine(b *testing.B) {
	for _, out := range []string{"discard", "pipe"} {
		for _, caller := range []bool{true, false} {
			name := out + "/caller"
			if !caller {
				name = out + "/no-caller"
			}
			b.Run(name, func(b *testing.B) {
				var w io.Writer = io.Discard
				if out == "pipe" {
					w = drainedPipe(b)
				}
				log, err := NewLoggerTo("info", "json", w)
				if err != nil {
					b.Fatal(err)
				}
				log = log.With(zap.String("channel", "email"))
				if !caller {
					log = OutcomeLogger(log)
				}
				b.ReportAllocs()
				for b.Loop() {
					log.Info("notification sent", zap.String("outcome", OutcomeSent), zap.Int("partition", 3),
						zap.Int64("offset", 123456), zap.Int64("latency_ms", 4), zap.String("event_id", "evt_01JDKX4Q2Z3Y"),
						zap.String("notification_id", "ntf_8f3a9c2b7d1e4f60"), zap.String("template", "gym.class.cancelled"),
						zap.Int("attempt", 0), zap.String("to", "e***@example.com"), zap.String("provider_message_id", "<abc.123@herald>"))
				}
			})
		}
	}
}

// drainedPipe is the write end of a pipe that cat, another process, reads
// and throws away.
func drainedPipe(b *testing.B) *os.File {
	r, w, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	cat := exec.Command("cat")
	cat.Stdin = r
	if err := cat.Start(); err != nil {
		b.Fatal(err)
	}
	r.Close()
	b.Cleanup(func() {
		w.Close()
		cat.Wait()
	})
	return w
}
