package main

import (
	"context"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/obs"
)

// TestPprofOnlyWhenOn: /debug/pprof/ is served with HERALD_PPROF=on and not
// otherwise (the default, off).
func TestPprofOnlyWhenOn(t *testing.T) {
	for _, c := range []struct {
		profiling config.Switch
		code      int
	}{{config.Off, 404}, {config.On, 200}} {
		cfg := config.Defaults()
		cfg.Profiling = c.profiling
		f := &fleet{cfg: cfg, metrics: obs.NewMetrics(), log: zap.NewNop()}
		srv, err := serveHTTP("127.0.0.1:0", f, nil)
		if err != nil {
			t.Fatal(err)
		}
		code, body := get(t, "http://"+srv.Addr+"/debug/pprof/")
		srv.Close()
		if code != c.code || c.code == 200 && !strings.Contains(body, "goroutine") {
			t.Errorf("HERALD_PPROF=%s: /debug/pprof/ answered %d, want %d", c.profiling, code, c.code)
		}
	}
}

// TestReadyWithinTakesAnAnswerAsTheAnswer: a check that answers at once is
// never reported as no answer. The check cancels its context once it has
// answered, and readyWithin's select picked between the answer and the
// cancelled context at random: under the race detector 16 of 20,000
// answered checks came back as "no answer within 2s", and
// TestReadinessAnswersWhileRedisIsFrozen failed so in a make test.
func TestReadyWithinTakesAnAnswerAsTheAnswer(t *testing.T) {
	for i := range 20000 {
		if err := readyWithin(context.Background(), readyTimeout, "the check", func(context.Context) error { return nil }); err != nil {
			t.Fatalf("check %d answered nil; readyWithin: %v", i, err)
		}
	}
}
