package gateway

import (
	"context"
	"errors"
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
	out := &sseSink{w: w, rc: http.NewResponseController(w), timeout: g.o.WriteTimeout, m: g.m}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	err := out.write([]byte("retry: 2000\n\n"))
	if err == nil {
		err = g.stream(ctx, s, pos, out)
	}
	g.end(s, "sse", err)
}

type sseSink struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	m       *metrics
	buf     []byte
}

func (o *sseSink) write(b []byte) error {
	_ = o.rc.SetWriteDeadline(time.Now().Add(o.timeout))
	_, err := o.w.Write(b)
	if err == nil {
		err = o.rc.Flush()
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
