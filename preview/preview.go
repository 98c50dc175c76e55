// Package preview serves a page that shows every notification a template
// tree produces from its samples — each event type × channel × locale —
// as a recipient would get it, with lint problems beside what caused them,
// and that updates itself when a file of the tree changes.
//
// It is a tool for the people who write templates (`herald templates
// preview`, and a page of `herald dev`). It renders with the same code the
// workers use and sends nothing; it must never be exposed to members.
package preview

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/templates"
)

// Options configure a Server.
type Options struct {
	// Dir is the template tree to show; empty shows the templates built
	// into herald, which never change.
	Dir string
	// Publish, when set, puts a "send" button beside each sample, which
	// calls it with the sample (herald dev publishes it to the events
	// topic).
	Publish func(ctx context.Context, s templates.Sample) error
}

// Server is the preview page and its endpoints, as an http.Handler whose
// links are relative, so it can be mounted under a prefix with
// http.StripPrefix:
//
//	GET  /          the page (?type=T, repeatable, shows only those event types)
//	GET  /version   the tree's current version (reading the tree if needed)
//	POST /publish   ?type=T&sample=S, when Options.Publish is set
type Server struct {
	opts Options
	mux  *http.ServeMux

	mu    sync.Mutex // serialises Refresh
	state atomic.Pointer[state]
}

// state is one rendering of the tree.
type state struct {
	Version  string
	Source   string
	Err      string // the tree could not be read at all
	Types    []*typeView
	Global   []templates.Problem // problems outside any event type (locales/)
	Problems int
	Cards    int
	Publish  bool
	inspect  *templates.Inspection
}

type typeView struct {
	Name        string
	Description string
	Problems    []templates.Problem // not attached to any card
	Samples     []*sampleView
	Loaded      bool
}

type sampleView struct {
	File  string
	Name  string
	Cards []*card
}

type card struct {
	Template  string
	Channel   string
	Locale    string
	Recipient string
	To        string
	Subject   string
	Text      string
	HTML      string
	Title     string
	Attach    []string
	SMS       templates.SMSInfo
	PushBytes int
	// Parts are the rendered parts by file, for a channel the page has no
	// view of its own for.
	Parts    []renderedPart
	Err      string
	Problems []templates.Problem
	Files    []string
}

// New returns a server showing opts.Dir as it is now.
func New(opts Options) (*Server, error) {
	s := &Server{opts: opts, mux: http.NewServeMux()}
	if _, err := s.Refresh(); err != nil {
		return nil, err
	}
	s.mux.HandleFunc("GET /{$}", s.page)
	s.mux.HandleFunc("GET /version", s.version)
	s.mux.HandleFunc("POST /publish", s.publish)
	return s, nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Version is the version of the tree shown.
func (s *Server) Version() string { return s.state.Load().Version }

// Refresh reads the tree and, when its content changed, renders it again.
// It reports whether the page changed.
func (s *Server) Refresh() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var in *templates.Inspection
	var err error
	source := s.opts.Dir
	if s.opts.Dir == "" {
		if s.state.Load() != nil {
			return false, nil // the embedded tree never changes
		}
		source = "templates built into herald"
		in, err = templates.InspectEmbedded()
	} else {
		in, err = templates.InspectDir(s.opts.Dir)
	}
	old := s.state.Load()
	if err != nil {
		// An unreadable tree (mid-swap, removed) is shown as such, and
		// checked again at the next poll.
		if old != nil && old.Err == err.Error() {
			return false, nil
		}
		s.state.Store(&state{Version: "unreadable", Source: source, Err: err.Error(), Publish: s.opts.Publish != nil})
		return true, nil
	}
	if old != nil && old.Version == in.Version {
		return false, nil
	}
	s.state.Store(build(in, source, s.opts.Publish != nil))
	return true, nil
}

// build lays out an inspection: every event type, its samples, and a card
// per recipient × rule × channel × locale; each problem beside the card
// whose files caused it, or at its event type when no card shows it.
func build(in *templates.Inspection, source string, publish bool) *state {
	st := &state{Version: in.Version, Source: source, Problems: len(in.Problems), Publish: publish, inspect: in}
	byType := map[string]*typeView{}
	view := func(name string) *typeView {
		if t := byType[name]; t != nil {
			return t
		}
		t := &typeView{Name: name}
		byType[name] = t
		st.Types = append(st.Types, t)
		return t
	}
	placed := make([]bool, len(in.Problems))
	if set := in.Set; set != nil {
		for _, typ := range set.EventTypes() {
			t := view(typ)
			t.Loaded, t.Description = true, set.Description(typ)
			samples := map[string]*sampleView{}
			for _, smp := range set.Samples(typ) {
				sv := &sampleView{File: smp.File, Name: smp.Name}
				samples[smp.File] = sv
				t.Samples = append(t.Samples, sv)
			}
			for _, r := range set.Renderings(typ) {
				c := newCard(set, r)
				for i, p := range in.Problems {
					if (p.Sample == "" || p.Sample == r.Sample.File) && contains(c.Files, p.File) {
						c.Problems = append(c.Problems, p)
						placed[i] = true
					}
				}
				sv := samples[r.Sample.File]
				sv.Cards = append(sv.Cards, c)
				st.Cards++
			}
		}
	}
	for i, p := range in.Problems {
		if placed[i] {
			continue
		}
		typ, _, _ := strings.Cut(p.File, "/")
		if typ == "locales" {
			st.Global = append(st.Global, p)
			continue
		}
		view(typ).Problems = append(view(typ).Problems, p)
	}
	sort.Slice(st.Types, func(i, j int) bool { return st.Types[i].Name < st.Types[j].Name })
	return st
}

func newCard(set *templates.Set, r templates.Rendering) *card {
	n := r.Notification
	c := &card{
		Template: n.Template, Channel: string(n.Channel), Locale: n.Locale,
		Recipient: n.RecipientID, To: n.To,
		Files: set.TemplateFiles(n.Template, n.Channel, n.Locale),
	}
	if r.Err != nil {
		c.Err = r.Err.Error()
		return c
	}
	m := r.Message
	c.Subject, c.Text, c.HTML, c.Title = m.Subject, m.Text, m.HTML, m.Title
	for _, a := range m.Attachments {
		c.Attach = append(c.Attach, a.Filename)
	}
	switch n.Channel {
	case notification.SMS:
		c.SMS = templates.SMS(m.Text)
	case notification.Push:
		c.PushBytes = templates.PushPayloadBytes(m)
	}
	for _, p := range channels.Lookup(n.Channel).Parts {
		c.Parts = append(c.Parts, renderedPart{File: p.File, Text: templates.PartText(m, p.Field)})
	}
	return c
}

type renderedPart struct{ File, Text string }

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	if _, err := s.Refresh(); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	st := s.state.Load()
	if only := r.URL.Query()["type"]; len(only) > 0 {
		// ?type=T (repeatable) shows only those event types.
		cp := *st
		cp.Types = nil
		for _, t := range st.Types {
			if contains(only, t.Name) {
				cp.Types = append(cp.Types, t)
			}
		}
		st = &cp
	}
	if err := pageTemplate.Execute(w, st); err != nil {
		fmt.Fprintf(w, "<p>preview failed: %s</p>", err) // headers are gone; say so in the page
	}
}

// version reads the tree (so a page polling it sees a change at once) and
// answers with the version shown.
func (s *Server) version(w http.ResponseWriter, r *http.Request) {
	if _, err := s.Refresh(); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintln(w, s.Version())
}

func (s *Server) publish(w http.ResponseWriter, r *http.Request) {
	if s.opts.Publish == nil {
		http.NotFound(w, r)
		return
	}
	st := s.state.Load()
	if st.inspect == nil || st.inspect.Set == nil {
		http.Error(w, "no template set loaded", http.StatusConflict)
		return
	}
	typ, name := r.FormValue("type"), r.FormValue("sample")
	for _, smp := range st.inspect.Set.Samples(typ) {
		if smp.Name != name {
			continue
		}
		if err := s.opts.Publish(r.Context(), smp); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		if r.Header.Get("Accept") == "application/json" {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		// Relative to the request as the browser sent it, so it works
		// under a prefix (http.Redirect would resolve it against the
		// stripped path).
		w.Header().Set("Location", "./#"+url.PathEscape(typ))
		w.WriteHeader(http.StatusSeeOther)
		return
	}
	http.Error(w, errors.New("no such sample").Error(), http.StatusNotFound)
}
