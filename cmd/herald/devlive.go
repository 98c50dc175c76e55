package main

import (
	"net/http"
	"sync"
	"time"

	"github.com/gymhq/herald/channels/inapp"
	"github.com/gymhq/herald/feed"
	"github.com/gymhq/herald/gateway/jwtauth"
	"github.com/gymhq/herald/sinks"
	"github.com/gymhq/herald/sinks/livepage"
)

// recordFeeds puts every item that lands in an in-app feed on the outbox,
// beside what the other channels' stand-ins accepted: the feed is the
// inapp channel's provider. An item is recorded once: when its append
// added it, or — an append whose answer Redis lost, so that the retry
// finds it there — when a send finds it and the outbox does not have it.
func (e *devEnv) recordFeeds() {
	s, ok := e.fleet.senders[inapp.Name].(*inapp.Sender)
	if !ok {
		return
	}
	var mu sync.Mutex // one recording at a time, so the check and the add agree
	s.Sent = func(person string, it feed.Item, added bool) {
		mu.Lock()
		defer mu.Unlock()
		if !added {
			if _, ok := e.outbox.Find(string(inapp.Name), it.ID); ok {
				return
			}
		}
		e.outbox.Add(sinks.Delivery{
			Channel: string(inapp.Name), To: person, Title: it.Title, Text: it.Body,
			ProviderID: it.Pos, NotificationID: it.ID, EventID: it.EventID, Meta: it.Data, At: time.Now(),
		})
	}
}

// devTokenTTL is how long a dev token lasts: a working day.
const devTokenTTL = 12 * time.Hour

// liveRoutes serves herald dev's gateway on its own HTTP server: the
// gateway's API (/v1/feed…), tokens for any person (GET /dev/token?sub=),
// and the member app and front-desk dashboard pages that use them.
func (e *devEnv) liveRoutes(mux *http.ServeMux) {
	gw := e.fleet.gateway
	if gw == nil {
		return
	}
	h := gw.Handler()
	mux.Handle("/v1/feed", h)
	mux.Handle("/v1/feed/", h)
	mux.Handle("/v1/live", h)
	mux.Handle("/v1/preferences", h)
	mux.Handle("/v1/unsubscribe", h)
	mux.HandleFunc("GET /dev/token", func(w http.ResponseWriter, r *http.Request) {
		sub := r.URL.Query().Get("sub")
		if err := feed.CheckPerson(sub); err != nil {
			http.Error(w, "sub: "+err.Error(), http.StatusBadRequest)
			return
		}
		tok, err := jwtauth.MintHS256([]byte(e.cfg.Gateway.JWTSecret), sub, time.Now(), devTokenTTL)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte(tok))
	})
	mux.Handle("GET /app/{$}", livepage.Member())
	mux.Handle("GET /dashboard/{$}", livepage.Dashboard())
}
