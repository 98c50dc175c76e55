// Package outboxpage is herald dev's outbox: a page of every delivery the
// stand-in providers accepted, and its JSON form (GET /api/outbox, the
// contract in docs/contracts.md).
package outboxpage

import (
	"encoding/json"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gymhq/herald/sim"
	"github.com/gymhq/herald/sinks"
)

// Options are what the page shows.
type Options struct {
	Outbox *sinks.Outbox
	// Kafka and Topic are where events are published (shown with a kcat
	// line); Store describes the idempotency store.
	Kafka, Topic, Store string
}

// Page is the outbox page: the last 200 deliveries, newest first, with a
// button per sample event type (POST /api/events, served by herald dev).
func Page(o Options) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		items := o.Outbox.All()
		slices.Reverse(items)
		if len(items) > 200 {
			items = items[:200]
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = page.Execute(w, map[string]any{
			"Items": items, "Total": o.Outbox.Len(), "Kafka": o.Kafka, "Topic": o.Topic,
			"Store": o.Store, "Types": sim.Types,
		})
	})
}

// API is GET /api/outbox: every delivery kept, oldest first, as Entry.
func API(o Options) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		items := o.Outbox.All()
		out := make([]Entry, len(items))
		for i, d := range items {
			out[i] = NewEntry(d)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
}

// Entry is one delivery as GET /api/outbox answers it: the contract
// in docs/contracts.md ("herald dev's outbox"). To is the address as sent,
// unmasked: every sink is a local fake, and the address is what a
// developer checks. Subject is the email subject or the push title, empty
// for SMS; Text is the email text part, the SMS body or the push body.
type Entry struct {
	Channel        string    `json:"channel"`
	To             string    `json:"to"`
	Subject        string    `json:"subject"`
	Text           string    `json:"text"`
	NotificationID string    `json:"notification_id"`
	EventID        string    `json:"event_id"`
	SentAt         time.Time `json:"sent_at"`
	// ListUnsubscribe is an email's one-click unsubscribe link (the
	// List-Unsubscribe header, without its angle brackets): POST
	// "List-Unsubscribe=One-Click" to it as a mailbox provider does.
	// Absent for a transactional email.
	ListUnsubscribe string `json:"list_unsubscribe,omitempty"`
}

func NewEntry(d sinks.Delivery) Entry {
	subject := d.Subject
	if subject == "" {
		subject = d.Title // a push's or a feed item's
	}
	return Entry{
		Channel: d.Channel, To: d.To, Subject: subject, Text: d.Text,
		NotificationID: d.NotificationID, EventID: d.EventID, SentAt: d.At.UTC(),
		ListUnsubscribe: strings.Trim(d.Meta["list_unsubscribe"], "<>"),
	}
}

var page = template.Must(template.New("outbox").Funcs(template.FuncMap{
	"ago":      func(t time.Time) string { return time.Since(t).Round(time.Second).String() },
	"trimLink": func(s string) string { return strings.Trim(s, "<>") },
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
{{with index $d.Meta "list_unsubscribe"}}<div><form method="post" action="{{trimLink .}}" target="_blank"><input type="hidden" name="List-Unsubscribe" value="One-Click"><button>one-click unsubscribe</button></form></div>{{end}}
 {{else if $d.Title}}<b>{{$d.Title}}</b><pre>{{$d.Text}}</pre>
 {{else}}<pre>{{$d.Text}}</pre>{{end}}</td>
 <td><code>{{$d.ProviderID}}</code></td>
 <td>{{ago $d.At}} ago</td>
</tr>{{else}}<tr><td colspan="5">Nothing yet. Publish an event above, or start with --simulate-rate.</td></tr>{{end}}
</table></body></html>`))
