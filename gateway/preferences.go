package gateway

import (
	"errors"
	"html/template"
	"io"
	"mime"
	"net/http"
	"strconv"

	"go.uber.org/zap"

	"github.com/gymhq/herald/prefs"
	"github.com/gymhq/herald/prefs/unsubscribe"
)

// People's preferences over HTTP (docs/preferences.md):
//
//	GET  /v1/preferences        the person's effective preferences (prefs.View)
//	PUT  /v1/preferences        merge a change (prefs.Patch), answer the same view
//	GET  /v1/unsubscribe?token= a page confirming a one-click unsubscribe; changes nothing
//	POST /v1/unsubscribe?token= the one-click unsubscribe itself (RFC 8058)
//
// The first two take the feed's bearer tokens: the person is the token's
// sub, never a parameter. The unsubscribe link needs no session: its token
// (package unsubscribe) is the authority, for one person, one category and
// one channel, until it expires. GET never changes anything, because mail
// scanners and link previews fetch every link in a message.

// checkPreferences holds Options to what the preference endpoints need.
func checkPreferences(o Options) error {
	switch {
	case (o.Preferences == nil) != (o.Templates == nil):
		return errors.New("gateway: preferences need both a store and the templates' categories")
	case o.Unsubscribe != nil && o.Preferences == nil:
		return errors.New("gateway: one-click unsubscribe needs the preferences store")
	}
	return nil
}

// routePreferences adds the preference endpoints that o turns on.
func (g *Gateway) routePreferences(mux *http.ServeMux) {
	if g.o.Preferences == nil {
		return
	}
	mux.HandleFunc("GET /v1/preferences", g.getPreferences)
	mux.HandleFunc("PUT /v1/preferences", g.putPreferences)
	if g.o.Unsubscribe != nil {
		mux.HandleFunc("GET "+unsubscribe.Path, g.unsubscribePage)
		mux.HandleFunc("POST "+unsubscribe.Path, g.unsubscribe)
	}
}

func (g *Gateway) getPreferences(w http.ResponseWriter, r *http.Request) {
	person, ok := g.auth(w, r)
	if !ok {
		return
	}
	p, err := g.o.Preferences.Get(r.Context(), person)
	if err != nil {
		g.preferencesFailed(w, err)
		return
	}
	writeJSON(w, http.StatusOK, prefs.NewView(p, g.o.Templates()))
}

// putPreferences merges a change: 400 naming the field for a malformed
// body or a channel or category that does not exist, 422 for one that
// would switch a required category off on every channel, and otherwise
// the whole view after the change.
func (g *Gateway) putPreferences(w http.ResponseWriter, r *http.Request) {
	person, ok := g.auth(w, r)
	if !ok {
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		httpError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, prefs.MaxBodyBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		httpError(w, http.StatusRequestEntityTooLarge, "the body is over "+strconv.Itoa(prefs.MaxBodyBytes)+" bytes")
		return
	case err != nil:
		httpError(w, http.StatusBadRequest, "the body could not be read")
		return
	}
	patch, err := prefs.DecodePatch(body)
	if err != nil {
		g.preferencesFailed(w, err)
		return
	}
	set := g.o.Templates()
	p, err := prefs.Change(r.Context(), g.o.Preferences, set, person, patch)
	if err != nil {
		g.preferencesFailed(w, err)
		return
	}
	writeJSON(w, http.StatusOK, prefs.NewView(p, set))
}

// preferencesFailed answers a refused input with its field, and a store
// that cannot answer as the feed's outages are answered.
func (g *Gateway) preferencesFailed(w http.ResponseWriter, err error) {
	var pe *prefs.Error
	switch {
	case errors.As(err, &pe):
		code := http.StatusBadRequest
		if errors.Is(err, prefs.ErrRequired) {
			code = http.StatusUnprocessableEntity
		}
		out := map[string]string{"error": pe.Text}
		if pe.Field != "" {
			out["field"] = pe.Field
		}
		writeJSON(w, code, out)
	case errors.Is(err, prefs.ErrCorrupt):
		g.log.Error("stored preferences do not decode; remove the key to reset them", zap.Error(err))
		httpError(w, http.StatusInternalServerError, "your stored preferences cannot be read")
	default:
		g.log.Warn("preferences unavailable", zap.Error(err))
		w.Header().Set("Retry-After", "1")
		httpError(w, http.StatusServiceUnavailable, "preferences unavailable")
	}
}

// maxUnsubscribeBody bounds the one-click POST's body, which is
// "List-Unsubscribe=One-Click".
const maxUnsubscribeBody = 4 << 10

// unsubscribePage is GET of a link: what it would do, and a button that
// POSTs it. It changes nothing.
func (g *Gateway) unsubscribePage(w http.ResponseWriter, r *http.Request) {
	tok, what, ok := g.unsubscribeToken(w, r)
	if !ok {
		return
	}
	writePage(w, http.StatusOK, page{
		Title:  "Unsubscribe",
		Text:   "Stop getting " + tok.Category + " messages by " + string(tok.Channel) + "? Everything else you get stays as it is.",
		Detail: what,
		Form:   r.URL.Query().Get("token"),
	})
}

// unsubscribe is the one-click POST (RFC 8058): the mailbox provider's
// button, or the page's. It switches the token's category off on its
// channel for its person, and doing it twice is doing it once.
func (g *Gateway) unsubscribe(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxUnsubscribeBody)
	tok, _, ok := g.unsubscribeToken(w, r)
	if !ok {
		return
	}
	if r.PostFormValue("List-Unsubscribe") != "One-Click" {
		writePage(w, http.StatusBadRequest, page{Title: "Unsubscribe", Text: "This request does not carry List-Unsubscribe=One-Click, so it changed nothing."})
		return
	}
	if _, err := prefs.Unsubscribe(r.Context(), g.o.Preferences, tok.Person, tok.Category, tok.Channel); err != nil {
		g.log.Warn("one-click unsubscribe failed", zap.Error(err))
		w.Header().Set("Retry-After", "1")
		writePage(w, http.StatusServiceUnavailable, page{Title: "Unsubscribe", Text: "We could not record this just now. Please try again in a moment."})
		return
	}
	g.log.Debug("one-click unsubscribe", zap.String("person", tok.Person), zap.String("category", tok.Category), zap.String("channel", string(tok.Channel)))
	writePage(w, http.StatusOK, page{
		Title: "Unsubscribed",
		Text:  "Done: you will no longer get " + tok.Category + " messages by " + string(tok.Channel) + ". You can turn them back on in the app's notification settings.",
	})
}

// unsubscribeToken checks the link's token and answers the request itself
// when it is refused: 400 for a token this gateway did not sign as it is,
// 410 for an expired one, 400 for a category that is required (no such
// link is ever sent). what is the category's description, for people.
func (g *Gateway) unsubscribeToken(w http.ResponseWriter, r *http.Request) (tok unsubscribe.Token, what string, ok bool) {
	tok, err := g.o.Unsubscribe.Verify(r.URL.Query().Get("token"), g.o.Now())
	switch {
	case errors.Is(err, unsubscribe.ErrExpired):
		writePage(w, http.StatusGone, page{Title: "Link expired",
			Text: "This unsubscribe link has expired. You can still choose what you get in the app's notification settings."})
		return tok, "", false
	case err != nil:
		writePage(w, http.StatusBadRequest, page{Title: "Link not valid",
			Text: "This unsubscribe link is not valid: it may have been cut short or changed. Open it again from the email, or choose what you get in the app's notification settings."})
		return tok, "", false
	}
	// A category no longer declared keeps its opt-outs (package prefs),
	// so its links still work; a required one never had any.
	if c := g.o.Templates().Category(tok.Category); c != nil {
		if c.Required {
			writePage(w, http.StatusBadRequest, page{Title: "Cannot unsubscribe",
				Text: "These messages are about what you booked and cannot be switched off. You can choose how you get them in the app's notification settings."})
			return tok, "", false
		}
		what = c.Description
	}
	return tok, what, true
}

// page is the unsubscribe endpoint's answer, for a person in a browser
// (the mailbox provider reads only the status).
type page struct {
	Title, Text string
	// Detail, when set, is a second paragraph: the category's description.
	Detail string
	// Form, when set, is the token the page's button POSTs.
	Form string
}

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="robots" content="noindex"><title>{{.Title}}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#222}button{font:inherit;padding:.5rem 1.25rem;cursor:pointer}</style>
</head><body><h1>{{.Title}}</h1><p>{{.Text}}</p>
{{- if .Detail}}
<p><small>{{.Detail}}</small></p>
{{- end}}
{{- if .Form}}
<form method="post" action="?token={{.Form}}"><input type="hidden" name="List-Unsubscribe" value="One-Click"><button type="submit">Unsubscribe</button></form>
{{- end}}
</body></html>
`))

func writePage(w http.ResponseWriter, code int, p page) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// The URL carries the token: it must not leak to another site, and
	// the page must not be framed or run anything.
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Robots-Tag", "noindex")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(code)
	_ = pageTemplate.Execute(w, p)
}
