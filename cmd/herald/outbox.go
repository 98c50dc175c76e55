package main

import (
	"context"
	"encoding/json"
	"html/template"
	"io"
	"net/http"
	"slices"
	"strconv"
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

	if err := e.templateRoutes(mux); err != nil {
		e.fleet.log.Error("template preview unavailable", zap.Error(err))
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		items := e.outbox.All()
		kept := len(items)
		slices.Reverse(items)
		if len(items) > 200 {
			items = items[:200]
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = outboxPage.Execute(w, map[string]any{
			"Items": items, "Kept": kept, "Total": e.outbox.Len(), "Kafka": e.brokers()[0], "Topic": e.cfg.EventsTopic,
			"Store": e.store, "Types": sim.Types,
		})
	})
	mux.HandleFunc("GET /api/outbox", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(struct {
			Total      int              `json:"total"`
			Deliveries []sinks.Delivery `json:"deliveries"`
		}{e.outbox.Len(), e.outbox.All()})
	})
	mux.HandleFunc("GET /email/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.PathValue("n"))
		items := e.outbox.All()
		if err != nil || n < 0 || n >= len(items) || items[n].Channel != "email" {
			http.NotFound(w, r)
			return
		}
		// The HTML part is what herald rendered; serve it sandboxed so any
		// script in it cannot run against this page.
		w.Header().Set("Content-Security-Policy", "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, items[n].HTML)
	})
	// POST /api/events publishes a raw CloudEvent body, or with ?type=T a
	// generated sample of that type.
	mux.HandleFunc("POST /api/events", func(w http.ResponseWriter, r *http.Request) {
		var key, value []byte
		if t := r.FormValue("type"); t != "" {
			mu.Lock()
			ev := gen.Make(t)
			mu.Unlock()
			key, value = ev.Key, ev.Value
		} else {
			b, err := io.ReadAll(io.LimitReader(r.Body, 2<<20))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			value = b
		}
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		if err := e.publishEvent(ctx, key, value); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		if r.FormValue("type") != "" && r.Header.Get("Accept") != "application/json" {
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
}

var outboxPage = template.Must(template.New("outbox").Funcs(template.FuncMap{
	"ago": func(t time.Time) string { return time.Since(t).Round(time.Second).String() },
	"idx": func(kept, i int) int { return kept - 1 - i },
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
<code>kcat -P -b {{.Kafka}} -t {{.Topic}} -k cls_1 event.json</code></p>
<table><tr><th>channel</th><th>to</th><th>message</th><th>provider id</th><th>when</th></tr>
{{$kept := .Kept}}
{{range $i, $d := .Items}}<tr>
 <td><span class="ch {{$d.Channel}}">{{$d.Channel}}</span></td>
 <td><code>{{$d.To}}</code></td>
 <td>{{if eq $d.Channel "email"}}<b>{{$d.Subject}}</b>{{if $d.Attachments}} 📎 {{range $d.Attachments}}{{.}} {{end}}{{end}}<pre>{{$d.Text}}</pre>{{if $d.HTML}}<a href="/email/{{idx $kept $i}}" target="_blank">HTML part</a>{{end}}
 {{else if eq $d.Channel "push"}}<b>{{$d.Title}}</b><pre>{{$d.Text}}</pre>
 {{else}}<pre>{{$d.Text}}</pre>{{end}}</td>
 <td><code>{{$d.ProviderID}}</code></td>
 <td>{{ago $d.At}} ago</td>
</tr>{{else}}<tr><td colspan="5">Nothing yet. Publish an event above, or start with --simulate-rate.</td></tr>{{end}}
</table></body></html>`))
