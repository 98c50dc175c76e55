package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gymhq/herald/config"
)

// readyTimeout bounds /readyz, under the deployment's probe timeout (3s),
// so that the kubelet sees the reason a pod is not ready.
const readyTimeout = 2 * time.Second

// readyWithin runs check with a context of d and returns its answer, or an
// error naming what it waits on once d has passed: go-redis waits for its
// read timeout, not for the context, on a Redis that accepts connections
// and never replies (a frozen host). The check goes on in the background
// until go-redis gives up.
func readyWithin(ctx context.Context, d time.Duration, waitsOn string, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	answer := make(chan error, 1)
	go func() {
		defer cancel()
		answer <- check(ctx)
	}()
	select {
	case err := <-answer:
		return err
	case <-ctx.Done():
		// The check cancels ctx once it has answered, so both cases may
		// be ready when this select runs, and select picks at random: an
		// answer already sent is the answer (1 in about 1,250 answered
		// checks was reported as no answer under the race detector).
		select {
		case err := <-answer:
			return err
		default:
			return fmt.Errorf("%s: no answer within %s", waitsOn, d)
		}
	}
}

// serveHTTP serves /metrics, /healthz and /readyz, /debug/pprof/ when
// HERALD_PPROF is on, plus extra routes (the
// dev outbox) when given, every request through wrap when given (herald
// dev's local-only guard). It returns once the listener is bound, so a bad
// address fails at start.
func serveHTTP(addr string, f *fleet, extra func(*http.ServeMux), wrap ...func(http.Handler) http.Handler) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(f.metrics.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		// Liveness: the process serves requests and its consumers have not
		// wedged (health.go). An idle consumer is healthy; restarting it
		// would not help.
		if err := f.live.Check(); err != nil {
			http.Error(w, "stalled: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := readyWithin(r.Context(), readyTimeout, f.readyWaitsOn(), f.ready); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	if f.cfg != nil && f.cfg.Profiling == config.On {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	for pattern, h := range f.routes {
		mux.Handle(pattern, h)
	}
	if extra != nil {
		extra(mux)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	var h http.Handler = mux
	for _, w := range wrap {
		h = w(h)
	}
	srv := &http.Server{Addr: ln.Addr().String(), Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			f.log.Error("http server stopped")
		}
	}()
	return srv, nil
}
