// Package email is herald's email channel: it submits rendered messages to
// an SMTP submission server with go-mail, over a small pool of persistent
// connections, and decides at every failure whether the message may be
// retried (see classify.go).
//
// Each message carries a Message-ID derived from its notification id,
// <notification-id@domain>, so a message that was accepted but is sent again
// (the one duplicate window the design admits) can be collapsed by the
// receiving systems.
//
// This package must never know Kafka, Redis or templates; never retry a
// message itself once the server may have accepted it (that is the worker's
// job, guarded by the idempotency keys); never send credentials before the
// session is encrypted (TLS is mandatory by default); and never put a
// recipient's address or a message body in the errors it returns, because
// those errors are logged.
package email

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/mail"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"

	"github.com/gymhq/herald/address"
	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
)

// HeaderNotificationID carries the notification id on every message, for
// support staff reading a raw message and for the sinks.
const HeaderNotificationID = "X-Herald-Notification-Id"

// CalendarInviteType is the content type given to an .ics attachment that
// arrives without one.
const CalendarInviteType = "text/calendar; method=REQUEST; charset=UTF-8"

// Sender sends email through one SMTP submission server. It is safe for
// concurrent use; at most Config.PoolSize messages are in flight at once and
// further Sends wait for a connection (bounded by their context and
// Config.Timeout).
type Sender struct {
	cfg    Config
	host   string
	from   *mail.Address
	client *gomail.Client // configuration only; sessions live in pool
	pool   *pool
}

var _ channels.Sender = (*Sender)(nil)

// New returns a Sender for cfg. It does not connect: the first Send dials,
// so a server that is down at start-up delays messages rather than the
// worker.
func New(cfg Config) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	host, portText, _ := net.SplitHostPort(cfg.Addr)
	port, _ := strconv.Atoi(portText)
	from, _ := mail.ParseAddress(cfg.From)

	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLSConfig != nil {
		tlsConf = cfg.TLSConfig.Clone()
	}
	if tlsConf.ServerName == "" {
		tlsConf.ServerName = host
	}
	policy := map[TLSMode]gomail.TLSPolicy{
		TLSMandatory:     gomail.TLSMandatory,
		TLSOpportunistic: gomail.TLSOpportunistic,
		TLSNone:          gomail.NoTLS,
	}[cfg.TLS]

	s := &Sender{cfg: cfg, host: host, from: from, pool: newPool(cfg.PoolSize)}
	opts := []gomail.Option{
		gomail.WithPort(port),
		gomail.WithTimeout(cfg.Timeout),
		gomail.WithTLSPolicy(policy),
		gomail.WithTLSConfig(tlsConf),
		// A stale pooled connection shows itself on MAIL FROM just as well as
		// on NOOP, and Send then redials; NOOP would add a round trip to
		// every message.
		gomail.WithoutNoop(),
		gomail.WithDialContextFunc(s.dialNet),
	}
	if cfg.HeloName != "" {
		opts = append(opts, gomail.WithHELO(cfg.HeloName))
	}
	// AUTH is done by authenticate, not go-mail: see there.
	client, err := gomail.NewClient(host, opts...)
	if err != nil {
		return nil, fmt.Errorf("email: %w", err)
	}
	s.client = client
	return s, nil
}

// Send submits m and returns its Message-ID as the receipt. A nil error
// means the server accepted the message (250 after DATA).
func (s *Sender) Send(ctx context.Context, m *channels.Message) (channels.Receipt, error) {
	msg, err := s.compose(m)
	if err != nil {
		return channels.Receipt{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()

	c, err := s.pool.acquire(ctx)
	if errors.Is(err, errClosed) {
		return channels.Receipt{}, failure.Retry(failure.ReasonUnavailable, err)
	}
	if err != nil {
		return channels.Receipt{}, failure.Retry(failure.ReasonTimeout,
			fmt.Errorf("email: waiting for an SMTP connection: %w", err))
	}
	reused := c != nil
	for {
		if c == nil {
			if c, err = s.dial(ctx); err != nil {
				s.pool.release(nil)
				return channels.Receipt{}, err
			}
		}
		res := s.transmit(ctx, c, msg, m.To)
		if res.stale && reused {
			// The server had closed the idle connection before any of this
			// message reached it, so nothing was sent: try once more on a
			// fresh connection. A Msg remembers its send state, so rebuild it.
			c.close()
			c, reused = nil, false
			msg, _ = s.compose(m)
			continue
		}
		if res.keep {
			s.pool.release(c)
		} else {
			c.close()
			s.pool.release(nil)
		}
		if res.err != nil {
			return channels.Receipt{}, res.err
		}
		return channels.Receipt{ProviderMessageID: msg.GetMessageID()}, nil
	}
}

// Close ends the idle SMTP sessions with QUIT. Sends still in flight finish
// and then close their connections; no Send may start after Close.
func (s *Sender) Close() error {
	s.pool.close(min(s.cfg.Timeout, 5*time.Second))
	return nil
}

// compose builds the MIME message. Its errors are about the message itself
// and so permanent.
func (s *Sender) compose(m *channels.Message) (*gomail.Msg, error) {
	if !isDotAtom(m.NotificationID) {
		return nil, failure.Perm(failure.ReasonInvalid,
			fmt.Errorf("email: notification id %q cannot form a Message-ID", m.NotificationID))
	}
	to, err := parseRecipient(m.To)
	if err != nil {
		return nil, err
	}
	if m.Text == "" && m.HTML == "" {
		return nil, failure.Perm(failure.ReasonRender, errors.New("email: message has neither a text nor an HTML body"))
	}

	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	msg.FromMailAddress(s.from)
	msg.ToMailAddress(&mail.Address{Name: oneLine(m.ToName), Address: to})
	msg.Subject(m.Subject)
	msg.SetMessageIDWithValue(m.NotificationID + "@" + s.cfg.MessageIDDomain)
	msg.SetDate()
	msg.SetGenHeader(HeaderNotificationID, m.NotificationID)
	// RFC 3834: stops vacation responders from answering a no-reply sender.
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	s.setUnsubscribe(msg, m)

	switch {
	case m.Text != "" && m.HTML != "":
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	case m.Text != "":
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	default:
		msg.SetBodyString(gomail.TypeTextHTML, m.HTML)
	}

	for _, a := range m.Attachments {
		ct, err := attachmentType(a)
		if err != nil {
			return nil, failure.Perm(failure.ReasonRender, err)
		}
		msg.AttachReadSeeker(a.Filename, bytes.NewReader(a.Data), gomail.WithFileContentType(gomail.ContentType(ct)))
	}
	return msg, nil
}

// parseRecipient accepts a bare address ("ana@example.com") by the rules
// the dispatcher already applied (package address): the display name
// travels separately in Message.ToName. The error is permanent
// invalid_address and does not quote the address.
func parseRecipient(to string) (string, error) {
	if err := address.Check(notification.Email, to); err != nil {
		return "", fmt.Errorf("email: %w", err)
	}
	return to, nil
}

// attachmentType returns a's content type: as given, or from the file
// extension (.ics is a calendar invite), with charset=UTF-8 added to text
// types that lack one.
func attachmentType(a channels.Attachment) (string, error) {
	if a.Filename == "" {
		return "", errors.New("email: attachment has no file name")
	}
	ct := a.ContentType
	if ct == "" {
		ext := strings.ToLower(path.Ext(a.Filename))
		if ext == ".ics" {
			return CalendarInviteType, nil
		}
		if ct = mime.TypeByExtension(ext); ct == "" {
			ct = "application/octet-stream"
		}
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", fmt.Errorf("email: attachment %q: content type %q: %w", a.Filename, ct, err)
	}
	if strings.HasPrefix(mt, "text/") && params["charset"] == "" {
		ct += "; charset=UTF-8"
	}
	return ct, nil
}

func oneLine(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}

// dialKey carries a *dialSlot through go-mail's dial so that dialNet can hand
// the guarded connection back to dial.
type dialKey struct{}

type dialSlot struct {
	ctx    context.Context // the Send's context
	conn   *guardedConn
	unbind func() bool
}

// dialNet is go-mail's DialContextFunc. It dials Config.Addr itself (go-mail
// joins host and port without brackets, which breaks IPv6 literals) and
// wraps the connection so it obeys the Send's context for the whole session
// set-up, not only for the TCP dial.
func (s *Sender) dialNet(ctx context.Context, network, _ string) (net.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, s.cfg.Addr)
	if err != nil {
		return nil, err
	}
	g := &guardedConn{Conn: nc}
	if slot, ok := ctx.Value(dialKey{}).(*dialSlot); ok {
		slot.conn = g
		slot.unbind = g.bind(slot.ctx)
	}
	return g, nil
}

// dial opens a session: TCP, greeting, EHLO, STARTTLS as configured, AUTH.
func (s *Sender) dial(ctx context.Context) (*conn, error) {
	slot := &dialSlot{ctx: ctx}
	sc, err := s.client.DialToSMTPClientWithContext(context.WithValue(ctx, dialKey{}, slot))
	authStage := false
	if err == nil && s.cfg.Username != "" {
		authStage = true
		err = s.authenticate(sc)
	}
	if slot.conn == nil {
		return nil, s.connectFailure(ctx, err, nil, false)
	}
	cancelled := slot.unbind()
	ioErr, _ := slot.conn.state()
	if err == nil && cancelled {
		err = ctx.Err()
	}
	if err != nil {
		// go-mail leaves the connection open when EHLO or STARTTLS fails.
		_ = slot.conn.Close()
		return nil, s.connectFailure(ctx, err, ioErr, authStage)
	}
	return &conn{smtp: sc, net: slot.conn}, nil
}

// authenticate logs in with PLAIN, or LOGIN when that is all the server
// offers. It runs after go-mail's TLS step, so with TLS mandatory the
// session is already encrypted; go-mail's PLAIN and LOGIN also refuse, on
// their own, to send credentials over plain text to anything but loopback.
// herald does AUTH itself, instead of go-mail's WithSMTPAuth, to choose the
// mechanism per connection (a go-mail Auth value is stateful and would be
// shared by every pooled connection) and to know that an error came from
// AUTH.
func (s *Sender) authenticate(sc *smtp.Client) error {
	ok, offered := sc.Extension("AUTH")
	if !ok {
		return errors.New("server does not offer AUTH, but credentials are configured")
	}
	mechs := strings.Fields(strings.ToUpper(offered))
	var a smtp.Auth
	switch {
	case slices.Contains(mechs, "PLAIN"):
		a = smtp.PlainAuth("", s.cfg.Username, s.cfg.Password, s.host, false)
	case slices.Contains(mechs, "LOGIN"):
		a = smtp.LoginAuth(s.cfg.Username, s.cfg.Password, s.host, false)
	default:
		return fmt.Errorf("server offers AUTH %s; herald speaks PLAIN and LOGIN", offered)
	}
	if err := sc.Auth(a); err != nil {
		return fmt.Errorf("AUTH: %w", err)
	}
	return nil
}

// outcome is what one SMTP transaction left behind.
type outcome struct {
	err   error
	keep  bool // the session is clean and may carry the next message
	stale bool // the connection was dead before this message reached the server
}

// transmit runs one SMTP transaction (MAIL, RCPT, DATA) on c.
func (s *Sender) transmit(ctx context.Context, c *conn, msg *gomail.Msg, rcpt string) outcome {
	unbind := c.net.bind(ctx)
	sendErr := s.client.SendWithSMTPClient(c.smtp, msg)
	var se *gomail.SendError
	errors.As(sendErr, &se)

	var keep bool
	switch {
	case sendErr == nil:
		keep = true
	case se != nil && !msg.IsDelivered() && isReply(se.ErrorCode()) &&
		se.ErrorCode() != 421 && se.Reason != gomail.ErrWriteContent:
		// The server refused something but the session is intact. go-mail
		// resets after MAIL and RCPT failures but not after DATA ones, so
		// end the transaction here before reusing the connection.
		keep = c.smtp.Reset() == nil
	}
	cancelled := unbind()
	ioErr, tainted := c.net.state()
	keep = keep && !cancelled && !tainted

	if msg.IsDelivered() {
		// go-mail reports a failed RSET after an accepted message as a
		// send error; the message is sent all the same.
		return outcome{keep: keep}
	}
	if se == nil {
		if sendErr == nil {
			sendErr = errors.New("go-mail reported neither delivery nor an error")
		}
		return outcome{err: failure.Retry(failure.ReasonUnknown, &sendError{msg: "email: " + scrub(sendErr.Error(), rcpt), cause: sendErr})}
	}
	code := se.ErrorCode()
	text := "email: " + scrub(se.Error(), rcpt)
	beforeRcpt := se.Reason == gomail.ErrConnCheck || se.Reason == gomail.ErrSMTPMailFrom
	if isReply(code) {
		return outcome{
			err:   classifyReply(se.Reason, code, enhancedCode(se), &sendError{msg: text}),
			keep:  keep,
			stale: code == 421 && beforeRcpt && !cancelled,
		}
	}
	return outcome{
		err:   classifyBroken(ctx, ioErr, text),
		stale: beforeRcpt && !cancelled && ctxErr(ctx) == nil,
	}
}
