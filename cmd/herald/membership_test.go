package main

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	zapobserver "go.uber.org/zap/zaptest/observer"

	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/obs"
)

// TestHealthzGroupWithoutGeneration: a consumer that holds no generation
// of its group fails /healthz once the limit has passed while the brokers
// answer (issue 10: groups that rebalanced for minutes with /healthz at
// 200), naming the group and the last join error, and logs that once; an
// unreachable broker does not (a restart would not reach it either).
func TestHealthzGroupWithoutGeneration(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC)}
	core, logs := zapobserver.New(zapcore.InfoLevel)
	f := &fleet{metrics: obs.NewMetrics(), log: zap.New(core)}
	f.live.Now = clock.now
	const limit = time.Minute
	joinErr := errors.New("read tcp 10.0.0.1:4711->10.0.0.2:9092: i/o timeout")
	dialErr := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	m := kafkarun.Membership{Group: "herald-email", Since: clock.t, LastJoinError: joinErr, JoinErrors: 7}
	f.live.SetMembers(func() []kafkarun.Membership { return []kafkarun.Membership{m} }, limit, f.log)
	srv, err := serveHTTP("127.0.0.1:0", f, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	url := "http://" + srv.Addr + "/healthz"
	expect := func(state string, code int, body ...string) {
		t.Helper()
		got, b := get(t, url)
		if got != code {
			t.Fatalf("%s: /healthz %d %q, want %d", state, got, b, code)
		}
		for _, s := range body {
			if !strings.Contains(b, s) {
				t.Fatalf("%s: /healthz %q, want it to contain %q", state, b, s)
			}
		}
	}

	clock.advance(limit - time.Second)
	expect("joining, within the limit", 200)
	clock.advance(2 * time.Second)
	expect("joining, past the limit", 503, "herald-email", "no consumer-group generation", "7 failed joins", "i/o timeout")
	expect("still past the limit", 503)
	if n := logs.FilterMessageSnippet("longer than the liveness limit").Len(); n != 1 {
		t.Errorf("logged the crossing %d times, want once", n)
	}

	m.Unreachable, m.LastJoinError = true, dialErr
	expect("broker unreachable", 200)

	m = kafkarun.Membership{Group: "herald-email", Joined: true, Since: clock.t}
	expect("joined again", 200)
}

// TestReadyzGroupWithoutGeneration: a consumer between generations is not
// ready, at once, and /readyz says which group and why.
func TestReadyzGroupWithoutGeneration(t *testing.T) {
	m := kafkarun.Membership{Group: "herald-sms", Since: time.Now().Add(-12 * time.Second), JoinErrors: 2,
		LastJoinError: fmt.Errorf("[27] Rebalance In Progress")}
	got := m.Describe(time.Now())
	for _, want := range []string{"no consumer-group generation for 12s", "2 failed joins", "Rebalance In Progress"} {
		if !strings.Contains(got, want) {
			t.Errorf("Describe = %q, want it to contain %q", got, want)
		}
	}
}
