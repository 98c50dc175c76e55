package main

import (
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
