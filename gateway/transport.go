package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/coder/websocket"
)

// sse is GET /v1/feed/stream: Server-Sent Events. Each item is
//
//	id: <position>
//	event: notification
//	data: <item JSON>
//
// a read mark elsewhere is "event: read" with {"id","read_at","unread"},
// and a live value (a class's attendance on a staff dashboard) is
// "event: live" with its JSON, which says its "type".
// A reconnecting EventSource sends the last id as Last-Event-ID and gets
// what it missed; a first connection may pass ?last_event_id= (the
// position GET /v1/feed returned) to start without a gap after the list.
func (g *Gateway) sse(w http.ResponseWriter, r *http.Request) {
	resume := r.Header.Get("Last-Event-ID")
	if resume == "" {
		resume = r.URL.Query().Get("last_event_id")
	}
	s, ctx, pos, ok := g.start(w, r, "sse", resume)
	if !ok {
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	out, closeConn, hijacked, err := g.sseConn(w, r)
	if err == nil {
		err = out.write([]byte("retry: 2000\n\n"))
	}
	if err == nil && hijacked {
		// Parked: the connection is the gateway's now, and this
		// goroutine (with whatever stack the opening reads grew) ends.
		if pos, err = g.open1(ctx, s, pos, out); err == nil {
			g.park(ctx, s, pos, out, "sse", closeConn)
			return
		}
	} else if err == nil {
		err = g.stream(ctx, s, pos, out)
		if r := closeReason(err); r != "" {
			out.closing(r)
		}
	}
	closeConn()
	g.end(s, "sse", err)
}

// sseConn takes an HTTP/1.1 connection over from net/http (Hijack) and
// writes the response head itself; the stream's body then runs until the
// connection closes. A held stream so costs only its socket, its session
// and one goroutine: net/http's read and write buffers (8 KiB), its
// response buffer and the goroutine it keeps reading the connection to
// notice a client going are released — about 15 KiB of a 35 KiB
// connection. A client that goes is noticed by the next write, at the
// latest the next heartbeat. Where the connection cannot be taken over
// (HTTP/2), the stream goes through the ResponseWriter.
func (g *Gateway) sseConn(w http.ResponseWriter, r *http.Request) (*sseSink, func(), bool, error) {
	out := &sseSink{timeout: g.o.WriteTimeout, m: g.m}
	hj, ok := w.(http.Hijacker)
	if !ok || !parkable(w, r) {
		rc := http.NewResponseController(w)
		w.WriteHeader(http.StatusOK)
		out.w, out.flush, out.deadline = w, rc.Flush, rc.SetWriteDeadline
		return out, func() {}, false, nil
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return nil, func() {}, false, err
	}
	if brw.Reader.Buffered() > 0 {
		// The client sent more than the request (pipelining): not a
		// stream client; nothing of it is read.
		conn.Close()
		return nil, func() {}, false, errors.New("data after the stream request")
	}
	head := []byte("HTTP/1.1 200 OK\r\n")
	for k, vs := range w.Header() {
		for _, v := range vs {
			head = append(append(append(append(head, k...), ": "...), v...), "\r\n"...)
		}
	}
	head = append(head, "Connection: close\r\n\r\n"...)
	out.w, out.deadline = conn, conn.SetWriteDeadline
	if err := out.write(head); err != nil {
		conn.Close()
		return nil, func() {}, false, err
	}
	return out, func() { conn.Close() }, true, nil
}

// parkable reports whether an SSE request's connection can be taken over
// and parked: HTTP/1.x through a ResponseWriter that can hijack.
func parkable(w http.ResponseWriter, r *http.Request) bool {
	_, ok := w.(http.Hijacker)
	return ok && r.ProtoMajor == 1
}

type sseSink struct {
	w        io.Writer
	flush    func() error // nil: writes go straight to the socket
	deadline func(time.Time) error
	timeout  time.Duration
	m        *metrics
	buf      []byte
}

func (o *sseSink) write(b []byte) error {
	_ = o.deadline(time.Now().Add(o.timeout))
	_, err := o.w.Write(b)
	if err == nil && o.flush != nil {
		err = o.flush()
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return errSlow
	}
	return err
}

func (o *sseSink) event(id, kind string, data []byte) error {
	b := o.buf[:0]
	if id != "" {
		b = append(append(append(b, "id: "...), id...), '\n')
	}
	b = append(append(append(b, "event: "...), kind...), "\ndata: "...)
	b = append(append(b, data...), "\n\n"...)
	o.buf = b[:0]
	if cap(o.buf) > 4<<10 { // keep no large buffer per idle connection
		o.buf = nil
	}
	return o.write(b)
}

func (o *sseSink) item(pos string, data []byte) error {
	if err := o.event(pos, "notification", data); err != nil {
		return err
	}
	o.m.sent.WithLabelValues("sse", "notification").Inc()
	return nil
}

func (o *sseSink) read(data []byte) error {
	if err := o.event("", "read", data); err != nil {
		return err
	}
	o.m.sent.WithLabelValues("sse", "read").Inc()
	return nil
}

func (o *sseSink) live(data []byte) error {
	if err := o.event("", "live", data); err != nil {
		return err
	}
	o.m.sent.WithLabelValues("sse", "live").Inc()
	return nil
}

// closing writes "event: closed" with {"reason": …}, best effort.
func (o *sseSink) closing(reason string) {
	_ = o.event("", "closed", []byte(`{"reason":"`+reason+`"}`))
}

func (o *sseSink) ping() error { return o.write([]byte(": ping\n\n")) }

// ws is GET /v1/feed/ws: the same items as JSON text frames, and a read
// mark elsewhere as {"type":"read","id","read_at","unread"}, and a live
// value as its JSON, which has a "type" too (an item has none). ?last_event_id= resumes after a position. The client sends
// nothing; a data frame from it closes the connection.
func (g *Gateway) ws(w http.ResponseWriter, r *http.Request) {
	s, ctx, pos, ok := g.start(w, r, "ws", r.URL.Query().Get("last_event_id"))
	if !ok {
		return
	}
	opts := &websocket.AcceptOptions{}
	for _, o := range g.o.AllowedOrigins {
		if o == "*" {
			opts.InsecureSkipVerify = true // bearer tokens, not cookies: no CSRF to guard
		} else {
			opts.OriginPatterns = append(opts.OriginPatterns, o)
		}
	}
	c, err := websocket.Accept(w, r, opts)
	if err != nil {
		g.end(s, "ws", err)
		return
	}
	c.SetReadLimit(1 << 10)
	ctx = c.CloseRead(ctx)
	out := &wsSink{c: c, ctx: ctx, timeout: g.o.WriteTimeout, m: g.m}
	err = g.stream(ctx, s, pos, out)
	switch {
	case errors.Is(err, errSlow):
		_ = c.CloseNow()
	case errors.Is(err, errReplaced):
		_ = c.Close(websocket.StatusPolicyViolation, "too many streams for this person")
	case errors.Is(err, errShutdown):
		_ = c.Close(websocket.StatusGoingAway, "gateway shutting down")
	case errors.Is(err, errExpired):
		_ = c.Close(websocket.StatusPolicyViolation, "token expired")
	default:
		_ = c.CloseNow()
	}
	g.end(s, "ws", err)
}

type wsSink struct {
	c       *websocket.Conn
	ctx     context.Context
	timeout time.Duration
	m       *metrics
}

func (o *wsSink) write(b []byte) error {
	ctx, cancel := context.WithTimeout(o.ctx, o.timeout)
	defer cancel()
	err := o.c.Write(ctx, websocket.MessageText, b)
	if err != nil && ctx.Err() == context.DeadlineExceeded && o.ctx.Err() == nil {
		return errSlow
	}
	return err
}

func (o *wsSink) item(_ string, data []byte) error {
	if err := o.write(data); err != nil {
		return err
	}
	o.m.sent.WithLabelValues("ws", "notification").Inc()
	return nil
}

func (o *wsSink) read(data []byte) error {
	// {"id":…} → {"type":"read","id":…}
	b := make([]byte, 0, len(data)+16)
	b = append(append(b, `{"type":"read",`...), data[1:]...)
	if err := o.write(b); err != nil {
		return err
	}
	o.m.sent.WithLabelValues("ws", "read").Inc()
	return nil
}

func (o *wsSink) live(data []byte) error {
	if err := o.write(data); err != nil {
		return err
	}
	o.m.sent.WithLabelValues("ws", "live").Inc()
	return nil
}

// closing is the close frame's code and reason, which ws writes.
func (o *wsSink) closing(string) {}

func (o *wsSink) ping() error {
	ctx, cancel := context.WithTimeout(o.ctx, o.timeout)
	defer cancel()
	if err := o.c.Ping(ctx); err != nil {
		if ctx.Err() == context.DeadlineExceeded && o.ctx.Err() == nil {
			return errSlow
		}
		return err
	}
	return nil
}
