// Package smtpsink is an in-process SMTP server that stands in for herald's
// email provider. It speaks real SMTP (go-smtp: EHLO, STARTTLS, AUTH PLAIN,
// enhanced status codes), parses every message it accepts and records it in
// a sinks.Outbox, and fails on request (FailNext, FailNextData, FailAddress,
// Refuse) so that tests and `herald dev` can watch herald's email channel
// meet the answers a real submission server gives.
//
// It is for tests and local development only. It must never relay: a message
// it accepts goes no further than the Outbox.
package smtpsink

import (
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/gymhq/herald/sinks"
)

// Options configures a Sink. The zero value is a plain-text server on a free
// loopback port without AUTH.
type Options struct {
	// Addr to listen on; default "127.0.0.1:0" (a free port, see Sink.Addr).
	Addr string
	// TLS, when set, makes the server offer STARTTLS (see SelfSignedTLS).
	TLS *tls.Config
	// AllowInsecureAuth offers AUTH before STARTTLS.
	AllowInsecureAuth bool
	// Username and Password, when set, make AUTH PLAIN required before MAIL.
	Username, Password string
	// MaxMessageBytes limits a message (default 10 MiB).
	MaxMessageBytes int64
	// Domain is the name in the greeting (default "localhost").
	Domain string
	// ErrorLog receives go-smtp's internal errors; default discarded.
	ErrorLog *log.Logger
	// Latency, when set, is how long DATA takes before it is answered, as a
	// real relay's queueing does (the chaos test's 20 ms providers).
	Latency time.Duration
}

// Sink is a running SMTP server. Its methods are safe for concurrent use.
type Sink struct {
	outbox *sinks.Outbox
	opts   Options

	accepted atomic.Int64  // connections ever accepted
	queued   atomic.Uint64 // queue ids handed out

	mu       sync.Mutex
	addr     string // fixed at Start, so that reopening keeps the port
	srv      *smtp.Server
	ln       net.Listener
	served   chan struct{} // closed when srv.Serve returned
	closed   bool
	failNext fault // consumed by RCPT and DATA
	failData fault // consumed by DATA only
	failAddr map[string]*smtp.SMTPError
	ratio    sinks.Ratio
	ratioErr *smtp.SMTPError // answer of the RCPTs ratio picks
}

type fault struct {
	n   int
	err *smtp.SMTPError
}

// Start listens on opts.Addr and serves until Close.
func Start(outbox *sinks.Outbox, opts Options) (*Sink, error) {
	if outbox == nil {
		return nil, errors.New("smtpsink: outbox is nil")
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.MaxMessageBytes == 0 {
		opts.MaxMessageBytes = 10 << 20
	}
	if opts.Domain == "" {
		opts.Domain = "localhost"
	}
	if opts.ErrorLog == nil {
		opts.ErrorLog = log.New(io.Discard, "", 0)
	}
	s := &Sink{outbox: outbox, opts: opts, addr: opts.Addr, failAddr: map[string]*smtp.SMTPError{}}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.listen(); err != nil {
		return nil, err
	}
	return s, nil
}

// listen starts a server on s.addr; s.mu must be held.
func (s *Sink) listen() error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("smtpsink: %w", err)
	}
	s.addr = ln.Addr().String()
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Addr = s.addr
	srv.Domain = s.opts.Domain
	srv.TLSConfig = s.opts.TLS
	srv.AllowInsecureAuth = s.opts.AllowInsecureAuth
	srv.MaxMessageBytes = s.opts.MaxMessageBytes
	srv.MaxRecipients = 100
	srv.ReadTimeout = 5 * time.Minute // RFC 5321's minimum server timeout
	srv.WriteTimeout = time.Minute
	srv.ErrorLog = s.opts.ErrorLog
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(countingListener{ln, &s.accepted})
	}()
	s.srv, s.ln, s.served = srv, ln, served
	return nil
}

// stop closes the listener and every open connection; s.mu must be held.
func (s *Sink) stop() {
	if s.srv == nil {
		return
	}
	_ = s.srv.Close()
	// Serve registers its listener with the server only once it runs, so a
	// Close right after listen could miss it: close it here as well.
	_ = s.ln.Close()
	<-s.served
	s.srv, s.ln, s.served = nil, nil, nil
}

// Addr is the host:port the sink listens on (also while refusing).
func (s *Sink) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Connections counts the connections the sink ever accepted.
func (s *Sink) Connections() int { return int(s.accepted.Load()) }

// Refuse(true) simulates an outage: it closes the listener and drops every
// open connection, so new connections are refused and pooled ones break.
// Refuse(false) listens again on the same address.
func (s *Sink) Refuse(refuse bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("smtpsink: closed")
	}
	if refuse {
		s.stop()
		return nil
	}
	if s.srv != nil {
		return nil
	}
	return s.listen()
}

// Close stops the sink for good.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.stop()
	return nil
}

// FailNext makes the next n RCPT or DATA commands, whichever come first,
// answer code (4xx or 5xx) with the enhanced status code ("4.3.0", or "" for
// the generic X.0.0) and message. A DATA failure is the answer to the final
// ".", after the message was transferred.
func (s *Sink) FailNext(n, code int, enhanced, msg string) error {
	e, err := smtpError(code, enhanced, msg)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.failNext = fault{n: n, err: e}
	s.mu.Unlock()
	return nil
}

// FailNextData is FailNext for DATA only: RCPT succeeds and the message is
// refused after transfer, which is where content and policy verdicts come.
func (s *Sink) FailNextData(n, code int, enhanced, msg string) error {
	e, err := smtpError(code, enhanced, msg)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.failData = fault{n: n, err: e}
	s.mu.Unlock()
	return nil
}

// FailAddress makes every RCPT TO addr (case-insensitive) answer code, for
// example 550 "5.1.1" for an unknown user, until ClearFaults.
func (s *Sink) FailAddress(addr string, code int, enhanced, msg string) error {
	e, err := smtpError(code, enhanced, msg)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.failAddr[strings.ToLower(addr)] = e
	s.mu.Unlock()
	return nil
}

// FailRatio makes the share p of RCPT commands answer code, enhanced and
// msg, spread evenly (see sinks.Ratio), after any FailAddress and FailNext
// faults. p = 0 turns it off.
func (s *Sink) FailRatio(p float64, code int, enhanced, msg string) error {
	e, err := smtpError(code, enhanced, msg)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.ratioErr = e
	s.ratio.Set(p)
	s.mu.Unlock()
	return nil
}

// ClearFaults removes every injected failure.
func (s *Sink) ClearFaults() {
	s.mu.Lock()
	s.failNext, s.failData = fault{}, fault{}
	s.ratio.Set(0)
	clear(s.failAddr)
	s.mu.Unlock()
}

func smtpError(code int, enhanced, msg string) (*smtp.SMTPError, error) {
	if code < 400 || code > 599 {
		return nil, fmt.Errorf("smtpsink: code %d is not a 4xx or 5xx failure", code)
	}
	ec := smtp.EnhancedCodeNotSet
	if enhanced != "" {
		parts := strings.Split(enhanced, ".")
		if len(parts) != 3 {
			return nil, fmt.Errorf("smtpsink: enhanced code %q is not class.subject.detail", enhanced)
		}
		for i, p := range parts {
			v, err := strconv.Atoi(p)
			if err != nil || v < 0 || v > 999 {
				return nil, fmt.Errorf("smtpsink: enhanced code %q is not class.subject.detail", enhanced)
			}
			ec[i] = v
		}
		if ec[0] != code/100 {
			return nil, fmt.Errorf("smtpsink: enhanced code %q does not match code %d", enhanced, code)
		}
	}
	if msg == "" {
		msg = "Injected failure"
	}
	return &smtp.SMTPError{Code: code, EnhancedCode: ec, Message: msg}, nil
}

// take consumes one use of f, if any is left; s.mu must be held.
func (f *fault) take() *smtp.SMTPError {
	if f.n <= 0 {
		return nil
	}
	f.n--
	return f.err
}

func (s *Sink) rcptFault(to string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.failAddr[strings.ToLower(to)]; e != nil {
		return e
	}
	if e := s.failNext.take(); e != nil {
		return e
	}
	if s.ratio.Next() {
		return s.ratioErr
	}
	return nil
}

func (s *Sink) dataFault() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.failData.take(); e != nil {
		return e
	}
	if e := s.failNext.take(); e != nil {
		return e
	}
	return nil
}

func (s *Sink) newSession(*smtp.Conn) (smtp.Session, error) { return &session{sink: s}, nil }

// session is one SMTP connection's state.
type session struct {
	sink   *Sink
	authed bool
	from   string
	rcpts  []string
}

var errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}

var _ smtp.AuthSession = (*session)(nil)

func (ss *session) AuthMechanisms() []string {
	if ss.sink.opts.Username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain || ss.sink.opts.Username == "" {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		o := ss.sink.opts
		userOK := subtle.ConstantTimeCompare([]byte(username), []byte(o.Username)) == 1
		passOK := subtle.ConstantTimeCompare([]byte(password), []byte(o.Password)) == 1
		if !userOK || !passOK || (identity != "" && identity != username) {
			return smtp.ErrAuthFailed
		}
		ss.authed = true
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.sink.opts.Username != "" && !ss.authed {
		return errAuthRequired
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := ss.sink.rcptFault(to); err != nil {
		return err
	}
	ss.rcpts = append(ss.rcpts, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	if err := ss.sink.dataFault(); err != nil {
		return err
	}
	raw, err := io.ReadAll(r)
	if err != nil {
		return err // go-smtp's size limit is an *SMTPError already
	}
	if d := ss.sink.opts.Latency; d > 0 {
		time.Sleep(d)
	}
	m, err := parseMessage(raw)
	if err != nil {
		// Loud on purpose: herald produced MIME a mail client could not read.
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Cannot parse message: " + err.Error()}
	}
	id := fmt.Sprintf("%010X", ss.sink.queued.Add(1))
	names := make([]string, len(m.attachments))
	meta := map[string]string{"envelope_from": ss.from, "header_to": m.to, "notification_id": m.notification}
	if m.unsubscribe != "" {
		meta["list_unsubscribe"], meta["list_unsubscribe_post"] = m.unsubscribe, m.unsubscribePost
	}
	for i, a := range m.attachments {
		names[i] = a.name
		meta["attachment_type:"+a.name] = a.contentType
	}
	from := m.from
	if from == "" {
		from = ss.from
	}
	for _, to := range ss.rcpts {
		ss.sink.outbox.Add(sinks.Delivery{
			Channel:     "email",
			To:          to,
			From:        from,
			Subject:     m.subject,
			Text:        m.text,
			HTML:        m.html,
			ProviderID:  id,
			MessageID:   m.messageID,
			Attachments: names,
			Meta:        meta,
			// The header herald sets on every message (channels/email).
			NotificationID: m.notification,
		})
	}
	// go-smtp answers a nil error with a fixed "250 2.0.0 OK: queued" and
	// writes any *SMTPError's code as is, so a 250 "error" is how to answer
	// with the queue id, as Postfix and friends do.
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "OK: queued as " + id}
}

func (ss *session) Reset() {
	ss.from = ""
	ss.rcpts = nil
}

func (ss *session) Logout() error { return nil }

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}
