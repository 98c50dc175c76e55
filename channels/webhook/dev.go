package webhook

import (
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/sinks"
)

// DevPath is where herald dev's HTTP server receives webhooks: a tree's
// webhooks.yaml may subscribe http://127.0.0.1:8025/dev/webhooks/<anything>
// and the deliveries appear on the outbox page.
const DevPath = "/dev/webhooks/"

// dev is the webhook channel's stand-in: a receiver on herald dev's own
// HTTP server that records every delivery into the outbox. It allows
// private networks, since it is one.
func dev(o channels.DevOptions) (*channels.DevFake, error) {
	o.Config.SetValue(AllowPrivateVar, "true")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var p payload
		_ = json.Unmarshal(body, &p)
		id := r.Header.Get("webhook-id")
		o.Outbox.Add(sinks.Delivery{
			Channel: string(Name), To: r.URL.Path, Subject: p.Type, Text: string(p.Data),
			ProviderID: id, NotificationID: id,
			Meta: map[string]string{"webhook-timestamp": r.Header.Get("webhook-timestamp"), "webhook-signature": r.Header.Get("webhook-signature")},
			At:   time.Now(),
		})
		w.WriteHeader(http.StatusNoContent)
	})
	return &channels.DevFake{Routes: map[string]http.Handler{"POST " + DevPath: h}}, nil
}
