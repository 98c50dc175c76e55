package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/gymhq/herald/sinks/outboxpage"
)

// routes adds the dev outbox: a page of everything "sent", its JSON form,
// and a way to publish a sample event.
func (e *devEnv) routes(mux *http.ServeMux) {
	for _, r := range e.fakeRoutes {
		mux.Handle(r.pattern, r.h)
	}
	e.liveRoutes(mux)
	if err := e.templateRoutes(mux); err != nil {
		e.fleet.log.Error("template preview unavailable", zap.Error(err))
	}
	page := outboxpage.Options{Outbox: e.outbox, Kafka: e.brokers()[0], Topic: e.cfg.EventsTopic, Store: e.store}
	mux.Handle("GET /{$}", outboxpage.Page(page))
	mux.Handle("GET /api/outbox", outboxpage.API(page))
	mux.HandleFunc("GET /email/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		d, ok := e.outbox.Find("email", id)
		if !ok {
			http.Error(w, fmt.Sprintf("no email with notification id %q in the outbox: it keeps the last %d deliveries, so an older one is gone", id, e.outbox.Keep()), http.StatusNotFound)
			return
		}
		// The HTML part is what herald rendered; serve it sandboxed so any
		// script in it cannot run against this page.
		w.Header().Set("Content-Security-Policy", "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, d.HTML)
	})
	// POST /api/events publishes a raw CloudEvent body, or with type=T (in
	// the query, or the page's form) a generated sample of that type. The
	// body is read before any form parsing: curl's --data sends JSON as
	// application/x-www-form-urlencoded, and parsing it as a form would
	// consume it (an empty record was published).
	mux.HandleFunc("POST /api/events", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 2<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		sample := r.URL.Query().Get("type")
		if t := bytes.TrimSpace(body); sample == "" && len(t) > 0 && t[0] != '{' {
			if form, err := url.ParseQuery(string(t)); err == nil {
				sample = form.Get("type")
			}
		}
		var key, value []byte
		if sample != "" {
			ev := e.simulator().MakeFor(sample, r.URL.Query().Get("member"))
			key, value = ev.Key, ev.Value
		} else {
			value = body
		}
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		if err := e.publishEvent(ctx, key, value); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		if sample != "" && r.Header.Get("Accept") != "application/json" {
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
}

// localOnly guards the dev page, which publishes events and shows every
// address herald sent to, against other web pages open in the same
// browser:
//
//   - A request whose Host is not this machine is refused, whatever its
//     method: a DNS-rebinding page (evil.example resolving to 127.0.0.1)
//     reaches the server under its own name, so the Host it sends names
//     it. Allowed are localhost, IP literals (a page served from an
//     address is that address's own origin) and the host of --http-addr.
//   - A state-changing request (POST) a browser marks as cross-site
//     (Sec-Fetch-Site, else an Origin other than the Host) is refused: an
//     auto-submitting form on another page must not publish events.
//     Requests without those headers (curl, scripts) are not browsers'
//     cross-site requests and pass.
//
// Both answer 403 with a line that says why.
func localOnly(listenAddr string) func(http.Handler) http.Handler {
	listenHost, _, err := net.SplitHostPort(listenAddr)
	if err != nil {
		listenHost = listenAddr
	}
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, fmt.Sprintf("herald dev: cross-site %s refused (Origin %q, Sec-Fetch-Site %q): only the dev page itself, or a client that is not a browser, may publish",
			r.Method, r.Header.Get("Origin"), r.Header.Get("Sec-Fetch-Site")), http.StatusForbidden)
	}))
	return func(next http.Handler) http.Handler {
		guarded := cop.Handler(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !localHost(r.Host, listenHost) {
				http.Error(w, fmt.Sprintf("herald dev: Host %q refused: this server answers to localhost, 127.0.0.1, [::1] or the host of --http-addr only (a guard against DNS rebinding)", r.Host), http.StatusForbidden)
				return
			}
			guarded.ServeHTTP(w, r)
		})
	}
}

// localHost reports whether the Host header hostport names this machine as
// localOnly allows.
func localHost(hostport, listenHost string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport // no port
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	switch {
	case host == "":
		return false
	case strings.EqualFold(host, "localhost"), net.ParseIP(host) != nil:
		return true
	}
	return listenHost != "" && strings.EqualFold(host, listenHost)
}
