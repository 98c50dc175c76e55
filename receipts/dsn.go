package receipts

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strings"

	"github.com/gymhq/herald/failure"
)

// DSN is a delivery status notification (RFC 3464): the report an MTA mails
// back to the envelope sender when it could not deliver, or (when asked)
// did deliver, a message. ParseDSN reads one; nothing in herald fetches
// them yet (see the package comment).
type DSN struct {
	// OriginalMessageID is the bounced message's Message-ID as it appears
	// in its headers, angle brackets included ("<id@domain>"): what the
	// email channel returned as ProviderMessageID. Empty when the report
	// did not include the original headers.
	OriginalMessageID string
	ReportingMTA      string
	Recipients        []DSNRecipient
}

// DSNRecipient is one per-recipient block of a DSN.
type DSNRecipient struct {
	// FinalRecipient and OriginalRecipient are addresses without their
	// type ("rfc822;").
	FinalRecipient    string
	OriginalRecipient string
	// Action is "failed", "delayed", "delivered", "relayed" or "expanded".
	Action string
	// Status is the enhanced status code, e.g. "5.1.1".
	Status         string
	DiagnosticCode string
}

// ErrNotDSN is returned for a message that is not a multipart/report with
// a delivery-status part.
var ErrNotDSN = errors.New("receipts: not a delivery status notification")

// dsnMaxRecipients and dsnMaxParts bound the work one report can cause.
const (
	dsnMaxRecipients = 1000
	dsnMaxParts      = 16
)

// ParseDSN reads a whole bounce message (headers and body). The caller
// bounds r's size. Errors are permanent: the same bytes never parse.
func ParseDSN(r io.Reader) (*DSN, error) {
	msg, err := mail.ReadMessage(bufio.NewReader(r))
	if err != nil {
		return nil, dsnError("%w: %v", ErrNotDSN, err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["boundary"] == "" {
		return nil, dsnError("%w: content type %q", ErrNotDSN, msg.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	d := &DSN{}
	found := false
	for range dsnMaxParts {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, dsnError("%w: %v", ErrNotDSN, err)
		}
		pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		body := partBody(p)
		switch pt {
		case "message/delivery-status", "message/global-delivery-status":
			if err := d.readStatus(body); err != nil {
				return nil, err
			}
			found = true
		case "text/rfc822-headers", "message/rfc822", "message/global", "message/global-headers":
			h, err := textproto.NewReader(bufio.NewReader(body)).ReadMIMEHeader()
			if err != nil && !errors.Is(err, io.EOF) && len(h) == 0 {
				continue
			}
			d.OriginalMessageID = strings.TrimSpace(h.Get("Message-Id"))
		}
	}
	if !found {
		return nil, dsnError("%w: no delivery-status part", ErrNotDSN)
	}
	return d, nil
}

// partBody undoes a base64 transfer encoding (multipart.Reader already
// undoes quoted-printable).
func partBody(p *multipart.Part) io.Reader {
	if strings.EqualFold(strings.TrimSpace(p.Header.Get("Content-Transfer-Encoding")), "base64") {
		return base64.NewDecoder(base64.StdEncoding, p)
	}
	return p
}

// readStatus reads the per-message block and the per-recipient blocks:
// header fields separated by blank lines.
func (d *DSN) readStatus(body io.Reader) error {
	tp := textproto.NewReader(bufio.NewReader(body))
	for block := 0; ; block++ {
		h, err := tp.ReadMIMEHeader()
		if len(h) > 0 {
			if block == 0 {
				d.ReportingMTA = typed(h.Get("Reporting-Mta"))
			} else if h.Get("Final-Recipient") != "" || h.Get("Action") != "" {
				if len(d.Recipients) == dsnMaxRecipients {
					return dsnError("receipts: a DSN with more than %d recipients", dsnMaxRecipients)
				}
				d.Recipients = append(d.Recipients, DSNRecipient{
					FinalRecipient:    typed(h.Get("Final-Recipient")),
					OriginalRecipient: typed(h.Get("Original-Recipient")),
					Action:            strings.ToLower(strings.TrimSpace(h.Get("Action"))),
					Status:            statusCode(h.Get("Status")),
					DiagnosticCode:    typed(h.Get("Diagnostic-Code")),
				})
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return dsnError("%w: delivery-status: %v", ErrNotDSN, err)
		}
	}
	if len(d.Recipients) == 0 {
		return dsnError("%w: delivery-status names no recipient", ErrNotDSN)
	}
	return nil
}

// typed strips the type of a typed field ("rfc822; ana@example.com",
// "smtp; 550 5.1.1 no such user", "dns; mx.example.com").
func typed(v string) string {
	if i := strings.IndexByte(v, ';'); i >= 0 {
		v = v[i+1:]
	}
	return strings.TrimSpace(v)
}

// statusCode keeps the enhanced code of a Status field, dropping a
// trailing comment ("5.1.1 (bad destination mailbox)").
func statusCode(v string) string {
	f := strings.Fields(v)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// Receipt maps the recipient's Action to a Status: failed is bounced,
// delivered delivered, relayed and expanded sent (handed on to a system
// that will not report further). A delayed action is no answer yet: ok is
// false.
func (r DSNRecipient) Receipt() (s Status, ok bool) {
	switch r.Action {
	case "failed":
		return StatusBounced, true
	case "delivered":
		return StatusDelivered, true
	case "relayed", "expanded":
		return StatusSent, true
	}
	return "", false
}

// SuppressReason returns the suppression reason a failed recipient feeds:
// invalid_address for a 5.1.x status (the mailbox or domain does not exist,
// which is what package suppress accepts for email), "" for anything else
// (a full mailbox, a policy refusal of the content, a temporary 4.x.x).
func (r DSNRecipient) SuppressReason() failure.Reason {
	if r.Action == "failed" && strings.HasPrefix(r.Status, "5.1.") {
		return failure.ReasonInvalidAddress
	}
	return ""
}

func dsnError(format string, args ...any) error {
	return failure.Perm(failure.ReasonDecode, fmt.Errorf(format, args...))
}
