// Package livepage is herald dev's live pages, served beside the outbox:
// a member's app view (their in-app feed, updating as notifications land)
// and a front-desk dashboard (the attendance of the location's classes
// ticking as bookings come in, and the busy-class warnings). Both are
// plain clients of the gateway's public API — a token from herald dev's
// GET /dev/token, GET /v1/feed, GET /v1/feed/stream (EventSource), POST
// /v1/feed/{id}/read — so they show what a real app would get.
package livepage

import (
	_ "embed"
	"net/http"
)

//go:embed member.html
var memberHTML []byte

//go:embed dashboard.html
var dashboardHTML []byte

// Member is the member app page: /app/?person=<member id>.
func Member() http.Handler { return page(memberHTML) }

// Dashboard is the staff dashboard: /dashboard/?person=<staff id>.
func Dashboard() http.Handler { return page(dashboardHTML) }

func page(b []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'")
		_, _ = w.Write(b)
	})
}
