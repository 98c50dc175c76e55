package main

import (
	"context"
	"strings"
	"testing"

	"go.uber.org/zap"
	zapobserver "go.uber.org/zap/zaptest/observer"
)

// go-redis's messages become structured warnings, sampled so that an
// outage's dial failures do not flood the log.
func TestRedisLogsAreStructuredAndSampled(t *testing.T) {
	core, logs := zapobserver.New(zap.InfoLevel)
	l := routeRedisLogs(zap.New(core))
	defer routeRedisLogs(zap.NewNop())
	for range 50 { // as go-redis calls it
		l.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts: %s\n", 5, "dial unix /tmp/redis.sock: connect: no such file or directory")
	}
	entries := logs.All()
	if len(entries) != 3 {
		t.Fatalf("%d entries from 50 identical messages, want 3 (sampled)", len(entries))
	}
	e := entries[0]
	if e.Level != zap.WarnLevel || !strings.HasPrefix(e.Message, "redis: connection pool: failed to dial after 5 attempts") || strings.HasSuffix(e.Message, "\n") {
		t.Errorf("entry %v %q", e.Level, e.Message)
	}
	if e.ContextMap()["component"] != "go-redis" {
		t.Errorf("fields %v", e.ContextMap())
	}
}
