package email

import (
	"context"
	"errors"
	"fmt"
	"net/textproto"
	"os"
	"regexp"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/gymhq/herald/failure"
)

// How SMTP failures are classified.
//
// Setting up a session (dial, greeting, EHLO, STARTTLS, AUTH) is not about
// any one message, so everything that fails there is retryable: network and
// TLS problems (including a server that does not offer STARTTLS when TLS is
// mandatory) as ReasonNetwork, 4xx and 5xx replies as ReasonUnavailable, a
// refused login as ReasonAuth. A refused login is a configuration fault —
// typically credentials rotated on one side first — and making it permanent
// would send every message of the outage to the DLQ; retried, they go out
// once the secret is fixed, while the auth reason on the failure metric pages
// whoever owns the credentials. The retry ladder still ends in the DLQ
// (exhausted) if nobody does.
//
// Within a transaction the reply code decides: 4xx is retryable
// (ReasonUnavailable; 421 also drops the connection). 530/534/535/538 mean
// we are not (properly) logged in, which is configuration again: retryable
// ReasonAuth. Any other 5xx is permanent. It is ReasonInvalidAddress when the
// enhanced status code says the address cannot be delivered to (5.1.1 bad
// mailbox, 5.1.2 bad domain, 5.1.3 bad syntax, 5.1.6 moved, 5.1.10 null MX),
// or, without a specific enhanced code, when RCPT TO is answered 550, 551 or
// 553. Everything else — a 550 after DATA is typically a spam or policy
// verdict on the content — is ReasonRejected: invalid_address may feed a
// suppression list, so it must not be claimed on a guess.
//
// A transaction that ends without a reply (the connection broke, the
// deadline passed) is retryable, ReasonTimeout or ReasonNetwork. When that
// happens after the final "." of DATA, the server may have accepted the
// message; retrying then is the admitted duplicate window, which the
// deterministic Message-ID lets receivers collapse.

// sendError is an SMTP failure in words that are safe to log: the
// recipient's address is replaced by "[recipient]".
type sendError struct {
	msg   string
	cause error
}

func (e *sendError) Error() string { return e.msg }
func (e *sendError) Unwrap() error { return e.cause }

func isReply(code int) bool { return code >= 400 && code < 600 }

func isAuthCode(code int) bool {
	switch code {
	case 530, 534, 535, 538:
		return true
	}
	return false
}

// undeliverable are the enhanced status codes (RFC 3463) that say the
// address itself cannot receive mail.
var undeliverable = map[string]bool{
	"5.1.1": true, "5.1.2": true, "5.1.3": true, "5.1.6": true, "5.1.10": true,
}

// classifyReply classifies a transaction failure the server answered with
// code (and, if it sent one, an enhanced code).
func classifyReply(stage gomail.SendErrReason, code int, enhanced string, err error) error {
	switch {
	case code/100 == 4:
		return failure.Retry(failure.ReasonUnavailable, err)
	case isAuthCode(code):
		return failure.Retry(failure.ReasonAuth, err)
	case stage == gomail.ErrSMTPMailFrom || stage == gomail.ErrConnCheck:
		// Refused before any recipient was named: about our sender, never
		// about the recipient's address.
		return failure.Perm(failure.ReasonRejected, err)
	case undeliverable[enhanced]:
		return failure.Perm(failure.ReasonInvalidAddress, err)
	case enhanced == "" && stage == gomail.ErrSMTPRcptTo && (code == 550 || code == 551 || code == 553):
		return failure.Perm(failure.ReasonInvalidAddress, err)
	default:
		return failure.Perm(failure.ReasonRejected, err)
	}
}

// classifyBroken classifies a transaction that ended without a reply.
func classifyBroken(ctx context.Context, ioErr error, text string) error {
	if err := ctxErr(ctx); err != nil {
		return failure.Retry(failure.ReasonTimeout, &sendError{msg: text, cause: err})
	}
	if errors.Is(ioErr, os.ErrDeadlineExceeded) {
		return failure.Retry(failure.ReasonTimeout, &sendError{msg: text, cause: ioErr})
	}
	return failure.Retry(failure.ReasonNetwork, &sendError{msg: text, cause: ioErr})
}

// connectFailure classifies a failure to set up a session; see the comment
// at the top of this file for why all of them are retryable.
func (s *Sender) connectFailure(ctx context.Context, err, ioErr error, authStage bool) error {
	wrapped := fmt.Errorf("email: connecting to %s: %w", s.cfg.Addr, err)
	var reply *textproto.Error
	if err := ctxErr(ctx); err != nil {
		return failure.Retry(failure.ReasonTimeout, fmt.Errorf("%w (%w)", wrapped, err))
	}
	switch {
	case errors.As(err, &reply) && (authStage || isAuthCode(reply.Code)):
		return failure.Retry(failure.ReasonAuth, wrapped)
	case errors.As(err, &reply):
		return failure.Retry(failure.ReasonUnavailable, wrapped)
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(ioErr, os.ErrDeadlineExceeded):
		return failure.Retry(failure.ReasonTimeout, wrapped)
	case ioErr != nil:
		return failure.Retry(failure.ReasonNetwork, wrapped)
	case authStage:
		return failure.Retry(failure.ReasonAuth, wrapped)
	default:
		return failure.Retry(failure.ReasonNetwork, wrapped)
	}
}

// ctxErr is ctx.Err(), but also reports a deadline that has passed while
// the context's own timer has not fired yet: the connection's deadline is
// the same instant, so its read can fail first.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

var enhancedPattern = regexp.MustCompile(`\b[245]\.\d{1,3}\.\d{1,3}\b`)

// enhancedCode returns the RFC 3463 code of a failed reply, or "" when there
// is none or only the meaningless X.0.0. go-mail fills
// SendError.EnhancedStatusCode only when the server advertised
// ENHANCEDSTATUSCODES; many servers send the codes regardless, so fall back
// to reading the reply text.
func enhancedCode(se *gomail.SendError) string {
	code := se.EnhancedStatusCode()
	if code == "" {
		code = enhancedPattern.FindString(se.Error())
	}
	if code == "" || code[0] != byte('0'+se.ErrorCode()/100) || strings.HasSuffix(code, ".0.0") {
		return ""
	}
	return code
}

// scrub replaces the recipient's address in s, whatever its case, so that
// errors can be logged.
func scrub(s, addr string) string {
	if addr == "" {
		return s
	}
	return regexp.MustCompile(`(?i)`+regexp.QuoteMeta(addr)).ReplaceAllLiteralString(s, "[recipient]")
}
