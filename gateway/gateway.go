// Package gateway is the gateway role: people's in-app feeds over HTTP, and
// every new item shown at once to each session a person has open — several
// tabs and devices, on any gateway pod behind a plain load balancer.
//
// The feed lives in Redis (package feed); every pod subscribes to the
// feeds' changes (Redis pub/sub) and hands each to the sessions it holds
// for that person. A change carries the item and the feed's previous
// position, so a session that is up to date writes the item as it is; a
// session that is not — it missed a change, or its pod's subscription was
// re-established — catches up from the feed with After from its own
// position. Positions are the Server-Sent Events ids, so a client that
// reconnects with Last-Event-ID (to any pod) gets exactly what it missed.
//
// Nothing is queued for a client: a session holds at most a few pending
// changes (past that it only remembers to catch up), and a write that
// blocks longer than WriteTimeout drops the connection. A client that
// does not read costs a pod no memory; it resumes when it reconnects.
package gateway

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/gymhq/herald/feed"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/prefs"
	"github.com/gymhq/herald/prefs/unsubscribe"
	"github.com/gymhq/herald/templates"
)

// Options configure a Gateway.
type Options struct {
	Feed feed.Store
	// Authenticate returns the person a request is from (the bearer
	// token's sub) and when the token expires (zero: never), or an error
	// that is answered 401. A stream ends when its token expires.
	Authenticate func(r *http.Request) (person string, expires time.Time, err error)
	// MaxConnections bounds the open streams; MaxPerPerson one person's,
	// the oldest closed when a new one would pass it.
	MaxConnections int
	MaxPerPerson   int
	// WriteTimeout is how long one write may block before the client is
	// dropped as too slow.
	WriteTimeout time.Duration
	// Heartbeat is how often an idle stream gets a keep-alive.
	Heartbeat time.Duration
	// AllowedOrigins are the browser origins allowed besides the
	// gateway's own ("*" any).
	AllowedOrigins []string
	Logger         *zap.Logger
	// Registerer, when set, gets the gateway's metrics.
	Registerer prometheus.Registerer
	Now        func() time.Time

	// Preferences, when set, serves GET and PUT /v1/preferences for the
	// authenticated person, against the categories of the template set
	// Templates returns (served now: it is hot-reloaded). Unsubscribe,
	// when set too, takes the one-click unsubscribe links it signed
	// (preferences.go).
	Preferences prefs.Store
	Templates   func() *templates.Set
	Unsubscribe *unsubscribe.Signer
}

// Limits of the HTTP API.
const (
	// DefaultLimit and MaxLimit bound GET /v1/feed?limit=N.
	DefaultLimit = 50
	MaxLimit     = 200
	// pendingMax is the changes a session holds before it only remembers
	// to catch up from the feed.
	pendingMax = 8
	// catchUpBatch is how many items one After reads.
	catchUpBatch = 200
)

// Why a stream ended, as herald_gateway_disconnects_total's reason.
var (
	errSlow     = errors.New("slow client: a write blocked past HERALD_GATEWAY_WRITE_TIMEOUT")
	errReplaced = errors.New("replaced: the person opened more streams than HERALD_GATEWAY_MAX_CONNECTIONS_PER_PERSON")
	errShutdown = errors.New("gateway shutting down")
	errExpired  = errors.New("the stream's token expired")
)

// Gateway serves feeds. Run must be running for streams to get changes.
type Gateway struct {
	o   Options
	log *zap.Logger
	// refusals logs refused requests (401, 503 at capacity), sampled: the
	// first 3 a second, then every 100th, so that a flood of bad tokens
	// is seen without drowning the log.
	refusals *zap.Logger
	m        *metrics

	mu     sync.Mutex
	people map[string][]*session // in connection order
	closed bool
	open   atomic.Int64
}

// New returns a Gateway.
func New(o Options) (*Gateway, error) {
	if o.Feed == nil || o.Authenticate == nil {
		return nil, errors.New("gateway: needs a feed store and an authenticator")
	}
	if err := checkPreferences(o); err != nil {
		return nil, err
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = 50_000
	}
	if o.MaxPerPerson <= 0 {
		o.MaxPerPerson = 10
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 25 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	log = log.With(zap.String("role", "gateway"))
	return &Gateway{o: o, log: log, refusals: obs.FloodLogger(log), m: m, people: map[string][]*session{}}, nil
}

// Run delivers the feeds' changes to the sessions until ctx ends, then
// closes every stream.
func (g *Gateway) Run(ctx context.Context) error {
	hctx, stopHeartbeat := context.WithCancel(ctx)
	go g.heartbeat(hctx)
	err := g.o.Feed.Subscribe(ctx, g.dispatch)
	stopHeartbeat()
	g.mu.Lock()
	g.closed = true
	for _, ss := range g.people {
		for _, s := range ss {
			s.cancel(errShutdown)
		}
	}
	g.mu.Unlock()
	return err
}

// Connections is the number of open streams.
func (g *Gateway) Connections() int { return int(g.open.Load()) }

// dispatch hands a change to the sessions of its person; it never blocks.
func (g *Gateway) dispatch(c feed.Change) {
	g.mu.Lock()
	if c.Kind == feed.KindResync {
		for _, ss := range g.people {
			for _, s := range ss {
				s.offer(c)
			}
		}
		g.mu.Unlock()
		g.m.resyncs.Inc()
		return
	}
	ss := g.people[c.Person]
	for _, s := range ss {
		s.offer(c)
	}
	g.mu.Unlock()
}

// session is one open stream. A stream with a goroutine of its own waits
// on wake; a parked one (park) has none: offer starts a short-lived
// goroutine that writes what is pending and ends.
type session struct {
	person string
	cancel context.CancelCauseFunc
	wake   chan struct{}

	expiry *time.Timer // ends the session when its token expires

	mu      sync.Mutex
	pending []feed.Change
	resync  bool
	ping    bool
	parked  *parked // nil for a stream with its own goroutine
}

// parked is a parked stream's state, guarded by its session's mu.
type parked struct {
	g       *Gateway
	out     sink
	pos     string
	running bool // a goroutine is writing
	done    bool
	close   func()
	ctx     context.Context
	// transport names it in metrics.
	transport string
}

func (s *session) offer(c feed.Change) {
	s.mu.Lock()
	if c.Kind == feed.KindResync || s.resync || len(s.pending) >= pendingMax {
		s.resync, s.pending = true, nil
	} else {
		s.pending = append(s.pending, c)
	}
	s.kickLocked()
	s.mu.Unlock()
}

// kickLocked gets the pending work written: wakes the stream's goroutine,
// or starts one for a parked stream that has none running.
func (s *session) kickLocked() {
	if p := s.parked; p != nil {
		if !p.running && !p.done {
			p.running = true
			go p.g.drain(s)
		}
		return
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *session) take() ([]feed.Change, bool, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, r, ping := s.pending, s.resync, s.ping
	s.pending, s.resync, s.ping = nil, false, false
	return p, r, ping
}

// register adds a session for person, closing their oldest past
// MaxPerPerson; false when the gateway is full or closing.
func (g *Gateway) register(ctx context.Context, person string, expires time.Time) (*session, context.Context, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed || g.open.Load() >= int64(g.o.MaxConnections) {
		return nil, nil, false
	}
	ctx, cancel := context.WithCancelCause(ctx)
	s := &session{person: person, cancel: cancel, wake: make(chan struct{}, 1)}
	if !expires.IsZero() {
		// The session ends with its token: an expired or revoked token
		// must not keep receiving a person's notifications.
		s.expiry = time.AfterFunc(time.Until(expires), func() { cancel(errExpired) })
	}
	ss := g.people[person]
	for len(ss) >= g.o.MaxPerPerson {
		ss[0].cancel(errReplaced)
		ss = ss[1:]
	}
	g.people[person] = append(ss, s)
	g.open.Add(1)
	return s, ctx, true
}

func (g *Gateway) unregister(s *session) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open.Add(-1) // a replaced session has left the list already
	ss := g.people[s.person]
	for i, x := range ss {
		if x == s {
			ss = append(ss[:i:i], ss[i+1:]...)
			break
		}
	}
	if len(ss) == 0 {
		delete(g.people, s.person)
	} else {
		g.people[s.person] = ss
	}
}

// sink is where a stream writes: SSE or WebSocket.
type sink interface {
	item(pos string, data []byte) error
	read(data []byte) error
	live(data []byte) error
	ping() error
	// closing tells the client why the gateway ends its stream, where the
	// transport has no other way to (SSE): a client should not reconnect
	// a replaced stream, and should get a new token for an expired one.
	closing(reason string)
}

// closeReason is what closing says for err; "" for a stream that ends
// because the client went or could not keep up.
func closeReason(err error) string {
	switch {
	case errors.Is(err, errReplaced):
		return "replaced"
	case errors.Is(err, errExpired):
		return "expired"
	case errors.Is(err, errShutdown):
		return "shutdown"
	}
	return ""
}

// stream runs one session on its own goroutine (a WebSocket, or SSE where
// the connection cannot be parked): catch up from pos, then write changes
// as they come, until the client goes, is too slow, is replaced, or the
// gateway stops. It returns why it ended.
func (g *Gateway) stream(ctx context.Context, s *session, pos string, out sink) error {
	pos, err := g.open1(ctx, s, pos, out)
	if err != nil {
		return err
	}
	hb := time.NewTicker(g.o.Heartbeat)
	defer hb.Stop()
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-hb.C:
			if err := out.ping(); err != nil {
				return err
			}
		case <-s.wake:
			changes, resync, _ := s.take()
			if pos, err = g.apply(ctx, s, pos, out, changes, resync); err != nil {
				return err
			}
		}
	}
}

// park hands a stream, caught up to pos, over to the gateway: it keeps no
// goroutine while idle. Changes start a short-lived one (drain); the
// gateway's heartbeat pings it; it ends like any stream, by calling
// closeFn and g.end.
func (g *Gateway) park(ctx context.Context, s *session, pos string, out sink, transport string, closeFn func()) {
	s.mu.Lock()
	s.parked = &parked{g: g, out: out, pos: pos, close: closeFn, ctx: ctx, transport: transport}
	if len(s.pending) > 0 || s.resync { // what came while it was opening
		s.kickLocked()
	}
	s.mu.Unlock()
	context.AfterFunc(ctx, func() { // replaced, or the gateway stops
		s.mu.Lock()
		p := s.parked
		if p.running || p.done {
			s.mu.Unlock()
			return // the running drain sees ctx and ends it
		}
		p.done = true
		s.mu.Unlock()
		if r := closeReason(context.Cause(ctx)); r != "" {
			p.out.closing(r)
		}
		p.close()
		g.end(s, transport, context.Cause(ctx))
	})
}

// drain writes a parked stream's pending changes until none is left.
func (g *Gateway) drain(s *session) {
	p := s.parked
	for {
		if err := p.ctx.Err(); err != nil {
			g.finish(s, context.Cause(p.ctx))
			return
		}
		changes, resync, ping := s.take()
		var err error
		if ping {
			err = p.out.ping()
		}
		if err == nil {
			p.pos, err = g.apply(p.ctx, s, p.pos, p.out, changes, resync)
		}
		if err != nil {
			g.finish(s, err)
			return
		}
		s.mu.Lock()
		if len(s.pending) == 0 && !s.resync && !s.ping {
			p.running = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
	}
}

// finish ends a parked stream from its drain.
func (g *Gateway) finish(s *session, err error) {
	s.mu.Lock()
	p := s.parked
	p.done, p.running = true, false
	s.mu.Unlock()
	if r := closeReason(err); r != "" {
		p.out.closing(r)
	}
	p.close()
	g.end(s, p.transport, err)
}

// heartbeat pings every parked stream each period, so that idle streams
// survive load balancers' idle timeouts and a client that went is noticed.
func (g *Gateway) heartbeat(ctx context.Context) {
	t := time.NewTicker(g.o.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		g.mu.Lock()
		for _, ss := range g.people {
			for _, s := range ss {
				s.mu.Lock()
				if s.parked != nil {
					s.ping = true
					s.kickLocked()
				}
				s.mu.Unlock()
			}
		}
		g.mu.Unlock()
	}
}

// open1 is a stream's first writes: what it missed, and the live values.
func (g *Gateway) open1(ctx context.Context, s *session, pos string, out sink) (string, error) {
	pos, err := g.catchUp(ctx, s.person, pos, out)
	if err == nil {
		err = g.sendLive(ctx, s.person, out)
	}
	return pos, err
}

// apply writes a session's pending changes from pos and returns its new
// position: an item that follows pos as it is, a gap by catching up from
// the feed, and everything again after a resync.
func (g *Gateway) apply(ctx context.Context, s *session, pos string, out sink, changes []feed.Change, resync bool) (string, error) {
	var err error
	if resync {
		if pos, err = g.catchUp(ctx, s.person, pos, out); err != nil {
			return pos, err
		}
		return pos, g.sendLive(ctx, s.person, out)
	}
	for _, c := range changes {
		switch c.Kind {
		case feed.KindItem:
			switch {
			case !feed.Later(c.Pos, pos): // sent already
			case c.Prev == pos:
				if err := out.item(c.Pos, c.Data); err != nil {
					return pos, err
				}
				pos = c.Pos
			default: // missed one: the feed has it
				if pos, err = g.catchUp(ctx, s.person, pos, out); err != nil {
					return pos, err
				}
			}
		case feed.KindRead:
			if err := out.read(c.Data); err != nil {
				return pos, err
			}
		case feed.KindLive:
			if err := out.live(c.Data); err != nil {
				return pos, err
			}
		}
	}
	return pos, nil
}

// catchUp writes the items after pos and returns the new position.
func (g *Gateway) catchUp(ctx context.Context, person, pos string, out sink) (string, error) {
	g.m.catchUps.Inc()
	for {
		items, err := g.o.Feed.After(ctx, person, pos, catchUpBatch)
		if err != nil {
			return pos, err
		}
		for _, it := range items {
			b, err := json.Marshal(it)
			if err != nil {
				return pos, err
			}
			if err := out.item(it.Pos, b); err != nil {
				return pos, err
			}
			pos = it.Pos
		}
		if len(items) < catchUpBatch {
			return pos, nil
		}
	}
}

// sendLive writes the person's live values (a dashboard's figures): at
// connect, and after a resync, since a live value has no position to
// resume from and only the latest matters.
func (g *Gateway) sendLive(ctx context.Context, person string, out sink) error {
	live, err := g.o.Feed.Live(ctx, person)
	if err != nil {
		return err
	}
	for _, v := range live {
		if err := out.live(v); err != nil {
			return err
		}
	}
	return nil
}

// start is the common opening of a stream: who, from where, and a session.
// It answers the request itself when it returns ok false.
func (g *Gateway) start(w http.ResponseWriter, r *http.Request, transport, resume string) (s *session, ctx context.Context, pos string, ok bool) {
	person, exp, ok := g.authExp(w, r)
	if !ok {
		return nil, nil, "", false
	}
	if resume != "" {
		if _, _, err := feed.ParsePos(resume); err != nil {
			httpError(w, http.StatusBadRequest, "the resume position is not one this gateway gave (Last-Event-ID)")
			return nil, nil, "", false
		}
	}
	parent := r.Context()
	if transport == "sse" && parkable(w, r) {
		// A parked stream outlives its handler, whose request context
		// net/http cancels when it returns.
		parent = context.WithoutCancel(parent)
	}
	s, ctx, ok = g.register(parent, person, exp)
	if !ok {
		g.m.refused.WithLabelValues("over_capacity").Inc()
		g.refused(r, "over_capacity", "HERALD_GATEWAY_MAX_CONNECTIONS reached")
		w.Header().Set("Retry-After", "1")
		httpError(w, http.StatusServiceUnavailable, "this gateway is at HERALD_GATEWAY_MAX_CONNECTIONS; retry (another pod may take it)")
		return nil, nil, "", false
	}
	// Registered before reading the position, so that a change made in
	// between is pending, not lost.
	last, err := g.o.Feed.Last(ctx, person)
	if err != nil {
		g.unregister(s)
		g.log.Warn("feed unavailable", zap.Error(err))
		unavailable(w)
		return nil, nil, "", false
	}
	pos = last
	if resume != "" && !feed.Later(resume, last) {
		pos = resume // a position past the feed's end (a feed lost and rebuilt) starts from now
	}
	g.m.connections.WithLabelValues(transport).Inc()
	return s, ctx, pos, true
}

// end records how a stream ended.
func (g *Gateway) end(s *session, transport string, err error) {
	if s.expiry != nil {
		s.expiry.Stop()
	}
	g.unregister(s)
	g.m.connections.WithLabelValues(transport).Dec()
	reason := "closed"
	switch {
	case errors.Is(err, errSlow):
		reason = "slow"
	case errors.Is(err, errReplaced):
		reason = "replaced"
	case errors.Is(err, errShutdown):
		reason = "shutdown"
	case errors.Is(err, errExpired):
		reason = "expired"
	}
	g.m.disconnects.WithLabelValues(reason).Inc()
	if reason == "slow" {
		g.log.Debug("dropped a slow client", zap.String("person", s.person), zap.String("transport", transport))
	}
}

// auth answers 401 unless the request carries a valid token.
func (g *Gateway) auth(w http.ResponseWriter, r *http.Request) (string, bool) {
	person, _, ok := g.authExp(w, r)
	return person, ok
}

// authExp is auth with the token's expiry.
func (g *Gateway) authExp(w http.ResponseWriter, r *http.Request) (string, time.Time, bool) {
	person, exp, err := g.o.Authenticate(r)
	if err == nil {
		err = feed.CheckPerson(person)
	}
	if err != nil {
		g.m.refused.WithLabelValues("unauthorized").Inc()
		w.Header().Set("WWW-Authenticate", `Bearer realm="herald", error="invalid_token"`)
		msg := err.Error()
		if !strings.HasPrefix(msg, "unauthorized") {
			msg = "unauthorized: " + msg
		}
		g.refused(r, "unauthorized", msg)
		httpError(w, http.StatusUnauthorized, msg)
		return "", time.Time{}, false
	}
	return person, exp, true
}

// refused logs a refused request: why (the metric's reason and the answer's
// text, which never quotes the token), where, and from whom.
func (g *Gateway) refused(r *http.Request, reason, why string) {
	g.refusals.Info("request refused", zap.String("reason", reason), zap.String("why", why),
		zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.String("remote", r.RemoteAddr))
}

// Handler is the gateway's HTTP API.
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/feed", g.list)
	mux.HandleFunc("GET /v1/feed/stream", g.sse)
	mux.HandleFunc("GET /v1/feed/ws", g.ws)
	mux.HandleFunc("POST /v1/feed/{id}/read", g.markRead)
	mux.HandleFunc("GET /v1/live", g.liveValues)
	g.routePreferences(mux)
	return g.cors(jsonErrors(mux))
}

// jsonErrors answers what mux has no route for (404, and 405 with its
// Allow header) in the JSON {"error"} every other answer uses, where
// ServeMux writes plain text.
func jsonErrors(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r) // sets the path values h reads
			return
		}
		c := &statusOnly{header: http.Header{}}
		h.ServeHTTP(c, r)
		code := cmp.Or(c.code, http.StatusNotFound)
		if code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
			mux.ServeHTTP(w, r) // a redirect to the cleaned path, with its Location
			return
		}
		if allow := c.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		httpError(w, code, strings.ToLower(http.StatusText(code)))
	})
}

// statusOnly keeps the status and headers an error handler writes and
// drops its plain-text body.
type statusOnly struct {
	header http.Header
	code   int
}

func (s *statusOnly) Header() http.Header         { return s.header }
func (s *statusOnly) Write(b []byte) (int, error) { return len(b), nil }
func (s *statusOnly) WriteHeader(code int)        { s.code = code }

type listJSON struct {
	Items  []feed.Item `json:"items"`
	Unread int         `json:"unread"`
	// Position is the newest item's, for a stream to resume from
	// (Last-Event-ID, or ?last_event_id= where a header cannot be set).
	Position string `json:"position"`
}

func (g *Gateway) list(w http.ResponseWriter, r *http.Request) {
	person, ok := g.auth(w, r)
	if !ok {
		return
	}
	limit := DefaultLimit
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLimit {
			httpError(w, http.StatusBadRequest, "limit must be 1.."+strconv.Itoa(MaxLimit))
			return
		}
		limit = n
	}
	items, unread, err := g.o.Feed.List(r.Context(), person, limit)
	if err != nil {
		g.log.Warn("feed unavailable", zap.Error(err))
		unavailable(w)
		return
	}
	out := listJSON{Items: items, Unread: unread}
	if len(items) > 0 {
		out.Position = items[0].Pos
	}
	writeJSON(w, http.StatusOK, out)
}

// liveValues is GET /v1/live: the person's live values (for staff, the
// attendance of the classes they see), {"live":[…]}.
func (g *Gateway) liveValues(w http.ResponseWriter, r *http.Request) {
	person, ok := g.auth(w, r)
	if !ok {
		return
	}
	live, err := g.o.Feed.Live(r.Context(), person)
	if err != nil {
		g.log.Warn("feed unavailable", zap.Error(err))
		unavailable(w)
		return
	}
	out := make([]json.RawMessage, 0, len(live))
	for _, v := range live {
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"live": out})
}

func (g *Gateway) markRead(w http.ResponseWriter, r *http.Request) {
	person, ok := g.auth(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	unread, found, err := g.o.Feed.Read(r.Context(), person, id, g.o.Now())
	switch {
	case errors.Is(err, feed.ErrInvalid):
		httpError(w, http.StatusBadRequest, err.Error())
	case err != nil:
		g.log.Warn("feed unavailable", zap.Error(err))
		unavailable(w)
	case !found:
		httpError(w, http.StatusNotFound, "no such item in your feed")
	default:
		writeJSON(w, http.StatusOK, map[string]any{"id": id, "unread": unread})
	}
}

// cors answers browsers from the allowed origins.
func (g *Gateway) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" && g.originAllowed(o) {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", o)
			h.Add("Vary", "Origin")
			if r.Method == http.MethodOptions {
				h.Set("Access-Control-Allow-Methods", "GET, POST, PUT")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID")
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (g *Gateway) originAllowed(o string) bool {
	for _, a := range g.o.AllowedOrigins {
		if a == "*" || strings.EqualFold(a, o) {
			return true
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// unavailable answers 503 while the feeds (Redis) cannot be reached; the
// client retries after a second.
func unavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	httpError(w, http.StatusServiceUnavailable, "feed unavailable")
}

func httpError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
