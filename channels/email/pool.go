package email

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/wneessen/go-mail/smtp"
)

// conn is one open, greeted (and, if configured, encrypted and
// authenticated) SMTP session.
type conn struct {
	smtp *smtp.Client
	net  *guardedConn
}

// close drops the connection without QUIT: used when the session's state is
// unknown, so saying anything more to the server is pointless.
func (c *conn) close() { _ = c.net.Close() }

// quit ends the session politely, bounded by d.
func (c *conn) quit(d time.Duration) {
	_ = c.net.SetDeadline(time.Now().Add(d))
	_ = c.smtp.Quit()
	_ = c.net.Close()
}

// pool hands out at most size connections at a time and keeps the idle ones
// open for the next Send. A token in slots is the right to hold one
// connection, so open connections never exceed size.
type pool struct {
	slots chan struct{}

	mu     sync.Mutex
	idle   []*conn // most recently used last
	closed bool
}

var errClosed = errors.New("email: sender is closed")

func newPool(size int) *pool { return &pool{slots: make(chan struct{}, size)} }

// acquire waits for a slot and returns an idle connection, or nil when the
// caller must dial one. On error the caller holds no slot.
func (p *pool) acquire(ctx context.Context) (*conn, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		<-p.slots
		return nil, errClosed
	}
	if n := len(p.idle); n > 0 {
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		return c, nil
	}
	return nil, nil
}

// release gives the slot back, keeping c (if not nil) for reuse.
func (p *pool) release(c *conn) {
	p.mu.Lock()
	if c != nil && p.closed {
		defer c.quit(time.Second)
	} else if c != nil {
		p.idle = append(p.idle, c)
	}
	p.mu.Unlock()
	<-p.slots
}

// close ends the idle sessions; connections in use are ended when released.
func (p *pool) close(d time.Duration) {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range idle {
		wg.Go(func() { c.quit(d) })
	}
	wg.Wait()
}

// guardedConn makes a net.Conn obey the context of the Send that is using
// it. go-mail honours a context only while dialling and afterwards sets its
// own fixed deadlines (WithTimeout) before each command; guardedConn clamps
// every deadline to the bound context's and, when the context is cancelled,
// moves the deadline into the past so a blocked read or write returns at
// once. It also remembers the first I/O error, which go-mail's SendError
// does not expose, so a broken connection is never put back in the pool.
type guardedConn struct {
	net.Conn

	mu      sync.Mutex
	limit   time.Time // zero: no limit
	ioErr   error
	tainted bool // an I/O error or a cancellation left the session unusable
}

var longAgo = time.Unix(1, 0)

// bind subjects the connection to ctx until unbind is called. unbind reports
// whether ctx ended while bound, in which case the connection must be
// dropped.
func (g *guardedConn) bind(ctx context.Context) (unbind func() (cancelled bool)) {
	g.mu.Lock()
	g.limit = time.Time{}
	if d, ok := ctx.Deadline(); ok {
		g.limit = d
	}
	_ = g.Conn.SetDeadline(g.limit)
	g.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		g.mu.Lock()
		g.limit, g.tainted = longAgo, true
		_ = g.Conn.SetDeadline(longAgo)
		g.mu.Unlock()
	})
	return func() bool {
		cancelled := !stop()
		g.mu.Lock()
		g.limit = time.Time{}
		g.mu.Unlock()
		return cancelled
	}
}

func (g *guardedConn) clamp(t time.Time) time.Time {
	if !g.limit.IsZero() && (t.IsZero() || t.After(g.limit)) {
		return g.limit
	}
	return t
}

func (g *guardedConn) SetDeadline(t time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.Conn.SetDeadline(g.clamp(t))
}

func (g *guardedConn) SetReadDeadline(t time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.Conn.SetReadDeadline(g.clamp(t))
}

func (g *guardedConn) SetWriteDeadline(t time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.Conn.SetWriteDeadline(g.clamp(t))
}

func (g *guardedConn) Read(p []byte) (int, error) {
	n, err := g.Conn.Read(p)
	if err != nil {
		g.fail(err)
	}
	return n, err
}

func (g *guardedConn) Write(p []byte) (int, error) {
	n, err := g.Conn.Write(p)
	if err != nil {
		g.fail(err)
	}
	return n, err
}

func (g *guardedConn) fail(err error) {
	g.mu.Lock()
	if g.ioErr == nil {
		g.ioErr = err
	}
	g.tainted = true
	g.mu.Unlock()
}

// state returns the first I/O error and whether the session is unusable.
func (g *guardedConn) state() (ioErr error, tainted bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ioErr, g.tainted
}
