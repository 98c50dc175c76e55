package obs

import (
	"bufio"
	"encoding/json"
	"os"
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
