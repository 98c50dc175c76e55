package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gymhq/herald/sim"
	"github.com/gymhq/herald/sinks"
)

// routes adds the dev outbox: a page of everything "sent", its JSON form,
// and a way to publish a sample event.
func (e *devEnv) routes(mux *http.ServeMux) {
	var mu sync.Mutex
	gen := sim.New(sim.Options{Seed: uint64(time.Now().UnixNano()), Prefix: "page" + strconv.FormatInt(time.Now().Unix()%100000, 36)})

	for _, r := range e.fakeRoutes {
		mux.Handle(r.pattern, r.h)
	}
	if err := e.templateRoutes(mux); err != nil {
		e.fleet.log.Error("template preview unavailable", zap.Error(err))
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		items := e.outbox.All()
		slices.Reverse(items)
		if len(items) > 200 {
			items = items[:200]
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = outboxPage.Execute(w, map[string]any{
			"Items": items, "Total": e.outbox.Len(), "Kafka": e.brokers()[0], "Topic": e.cfg.EventsTopic,
			"Store": e.store, "Types": sim.Types,
		})
	})
	mux.HandleFunc("GET /api/outbox", func(w http.ResponseWriter, r *http.Request) {
		items := e.outbox.All()
		out := make([]outboxEntry, len(items))
		for i, d := range items {
			out[i] = newOutboxEntry(d)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
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
			mu.Lock()
			ev := gen.Make(sample)
			mu.Unlock()
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

// outboxEntry is one delivery as GET /api/outbox answers it: the contract
// in docs/contracts.md ("herald dev's outbox"). To is the address as sent,
// unmasked: every sink is a local fake, and the address is what a
// developer checks. Subject is the email subject or the push title, empty
// for SMS; Text is the email text part, the SMS body or the push body.
type outboxEntry struct {
	Channel        string    `json:"channel"`
	To             string    `json:"to"`
	Subject        string    `json:"subject"`
	Text           string    `json:"text"`
	NotificationID string    `json:"notification_id"`
	EventID        string    `json:"event_id"`
	SentAt         time.Time `json:"sent_at"`
}

func newOutboxEntry(d sinks.Delivery) outboxEntry {
	subject := d.Subject
	if d.Channel == "push" {
		subject = d.Title
	}
	return outboxEntry{
		Channel: d.Channel, To: d.To, Subject: subject, Text: d.Text,
		NotificationID: d.NotificationID, EventID: d.EventID, SentAt: d.At.UTC(),
	}
}

var outboxPage = template.Must(template.New("outbox").Funcs(template.FuncMap{
	"ago": func(t time.Time) string { return time.Since(t).Round(time.Second).String() },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>herald dev · outbox</title>
<meta http-equiv="refresh" content="3">
<style>
 body{font:14px/1.4 system-ui,sans-serif;margin:2rem;color:#222}
 h1{margin:0 0 .3rem} .meta{color:#666;margin-bottom:1rem}
 table{border-collapse:collapse;width:100%} td,th{border-bottom:1px solid #eee;padding:.35rem .5rem;text-align:left;vertical-align:top}
 .ch{font-weight:600;text-transform:uppercase;font-size:12px;padding:.1rem .4rem;border-radius:4px}
 .email{background:#e3f0ff}.sms{background:#e6f7e9}.push{background:#fff2dd}
 code{font-size:12px;color:#555} form{display:inline} button{margin-right:.3rem}
 pre{white-space:pre-wrap;margin:0;font:13px/1.35 ui-monospace,monospace;max-width:60rem}
</style></head><body>
<h1>herald outbox</h1>
<div class="meta"><a href="/templates/">template preview</a> · {{.Total}} delivered · Kafka <code>{{.Kafka}}</code> topic <code>{{.Topic}}</code> · idempotency: {{.Store}} · refreshes every 3 s</div>
<div>Publish a sample event:
{{range .Types}}<form method="post" action="/api/events"><input type="hidden" name="type" value="{{.Type}}"><button>{{.Type}}</button></form>{{end}}
</div>
<p>Or produce CloudEvents JSON to the topic with any Kafka client, e.g.
<code>jq -c . event.json | kcat -P -b {{.Kafka}} -t {{.Topic}} -k cls_1</code>
(one event per line: kcat sends each line as one record, while a file given as an argument would be sent whole as one record).
JSON of what was sent: <a href="/api/outbox"><code>/api/outbox</code></a>.</p>
<table><tr><th>channel</th><th>to</th><th>message</th><th>provider id</th><th>when</th></tr>
{{range $d := .Items}}<tr>
 <td><span class="ch {{$d.Channel}}">{{$d.Channel}}</span></td>
 <td><code>{{$d.To}}</code></td>
 <td>{{if eq $d.Channel "email"}}<b>{{$d.Subject}}</b>{{if $d.Attachments}} 📎 {{range $d.Attachments}}{{.}} {{end}}{{end}}<pre>{{$d.Text}}</pre>{{if and $d.HTML $d.NotificationID}}<a href="/email/{{$d.NotificationID}}" target="_blank">HTML part</a>{{end}}
 {{else if eq $d.Channel "push"}}<b>{{$d.Title}}</b><pre>{{$d.Text}}</pre>
 {{else}}<pre>{{$d.Text}}</pre>{{end}}</td>
 <td><code>{{$d.ProviderID}}</code></td>
 <td>{{ago $d.At}} ago</td>
</tr>{{else}}<tr><td colspan="5">Nothing yet. Publish an event above, or start with --simulate-rate.</td></tr>{{end}}
</table></body></html>`))

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
