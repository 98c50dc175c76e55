// Package address decides what a deliverable address is on each channel,
// in one place: the dispatcher refuses a recipient's bad address with it
// before fan-out (so one bad address costs one message, not the event), and
// the channel senders use the same rules defensively.
//
// An address is personal data. Every error here is classified (package
// failure), permanent, and describes the address without quoting it or
// giving its length, so that it can go into logs and DLQ headers as it is.
package address

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"

	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
)

// MaxEmail is the longest email address accepted (RFC 5321's path limit,
// less the angle brackets).
const MaxEmail = 254

// MaxPushToken bounds a push token; FCM registration tokens are a few
// hundred bytes.
const MaxPushToken = 4096

// Check reports whether to is a well-formed address on ch, by the rule ch
// declared (notification.Spec.Check; the shipped channels use Email, Phone
// and PushToken below). Check says nothing of whether the address exists
// or is allowed (see SMSPolicy).
func Check(ch notification.Channel, to string) error {
	s := notification.SpecOf(ch)
	if s == nil {
		return failure.Perm(failure.ReasonInvalidAddress, fmt.Errorf("channel %q has no address rules", ch))
	}
	return s.Check(to)
}

// Email checks an email address: one bare address as net/mail parses it
// (no display name, no comments, no group), at most MaxEmail bytes.
func Email(to string) error { return verdict(notification.Email, email(to)) }

// Phone checks an SMS number: E.164, "+" and 7 to 15 digits, the first not
// zero — what Twilio needs, and what docs/contracts.md §2 promises
// producers send.
func Phone(to string) error {
	if IsE164(to) {
		return nil
	}
	return verdict(notification.SMS, "is not E.164 (+ and 7 to 15 digits, the first not 0)")
}

// PushToken checks a push token: 1 to MaxPushToken bytes of printable
// ASCII without spaces, which every FCM registration token is.
func PushToken(to string) error { return verdict(notification.Push, pushToken(to)) }

// verdict is failure.ReasonInvalidAddress, permanent — the same address
// fails the same way however often it is tried — unless bad is empty.
func verdict(ch notification.Channel, bad string) error {
	if bad == "" {
		return nil
	}
	return failure.Perm(failure.ReasonInvalidAddress, fmt.Errorf("%s address %s", ch, bad))
}

func email(s string) string {
	switch {
	case s == "":
		return "is empty"
	case len(s) > MaxEmail:
		return fmt.Sprintf("is longer than %d bytes", MaxEmail)
	}
	if plainEmail(s) {
		return ""
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return "is not a bare email address (local@domain, no name or comment)"
	}
	return ""
}

// plainEmail reports whether s is local@domain with both parts dot-atoms
// of ASCII atext (RFC 5322 §3.2.3: no leading, trailing or double dot),
// the form almost every address has. net/mail parses such an s as one
// addr-spec equal to s, with no display name, so email accepts it without
// parsing (about half the allocations of rendering an email with a
// calendar invite, which checks two addresses); anything else is left to
// net/mail. It never rejects: false only means "parse it".
func plainEmail(s string) bool {
	at := strings.IndexByte(s, '@')
	return at > 0 && dotAtom(s[:at]) && dotAtom(s[at+1:])
}

// dotAtom reports whether s is a non-empty dot-atom of ASCII atext.
func dotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.':
			if s[i+1] == '.' { // s does not end with a dot, so i+1 is in s
				return false
			}
		case c <= ' ' || c > '~':
			return false
		case strings.IndexByte(`()<>[]:;@\,"`, c) >= 0:
			return false
		}
	}
	return true
}

func pushToken(s string) string {
	switch {
	case s == "":
		return "is empty"
	case len(s) > MaxPushToken:
		return fmt.Sprintf("is longer than %d bytes", MaxPushToken)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return "is not printable ASCII without spaces"
		}
	}
	return ""
}

// IsE164 reports whether s is "+" and 7 to 15 digits, the first not zero.
func IsE164(s string) bool {
	if len(s) < 8 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// DefaultDeniedPrefixes are SMS destinations refused unless configured
// otherwise: premium-rate and shared-cost ranges, and the international
// networks and premium services favoured by SMS-pumping (toll) fraud. No
// member's mobile number is in any of them, so refusing them costs nothing
// and caps what a forged or mistyped number can cost.
var DefaultDeniedPrefixes = []string{
	"+1900", "+1976", // NANP premium (900) and the old 976 pay-per-call exchange
	"+449",             // UK 09x premium rate
	"+49900", "+49137", // Germany premium (0900) and mass-calling (0137)
	"+3389",                                // France premium (089x)
	"+34803", "+34806", "+34807", "+34905", // Spain premium and mass-calling
	"+39892", "+39899", // Italy premium
	"+61190",                       // Australia premium (1900)
	"+870", "+881", "+882", "+883", // Inmarsat, global satellite and international networks
	"+979", // International Premium Rate Service
}

// SMSPolicy decides which E.164 destinations herald may text. The zero
// value allows every country and denies nothing; DefaultSMSPolicy is what
// herald runs with unless configured otherwise. Safe for concurrent use
// once built.
type SMSPolicy struct {
	// Allowed are calling codes or longer E.164 prefixes ("+44", "+1204");
	// a number must start with one of them. Empty allows every country.
	Allowed []string
	// Denied are E.164 prefixes refused even when Allowed matches.
	Denied []string
}

// DefaultSMSPolicy allows every country and denies DefaultDeniedPrefixes.
func DefaultSMSPolicy() *SMSPolicy {
	return &SMSPolicy{Denied: append([]string(nil), DefaultDeniedPrefixes...)}
}

// Permit reports whether phone, a number Check accepted, may be texted. A
// refusal is permanent, failure.ReasonDestinationDenied, and names the
// rule (the configured prefix), never the number. A nil policy permits
// everything.
func (p *SMSPolicy) Permit(phone string) error {
	if p == nil {
		return nil
	}
	for _, d := range p.Denied {
		if strings.HasPrefix(phone, d) {
			return failure.Perm(failure.ReasonDestinationDenied, fmt.Errorf("sms destination is in the denied range %s", d))
		}
	}
	if len(p.Allowed) == 0 {
		return nil
	}
	for _, a := range p.Allowed {
		if strings.HasPrefix(phone, a) {
			return nil
		}
	}
	return failure.Perm(failure.ReasonDestinationDenied, errors.New("sms destination is not in an allowed country"))
}

// CheckPrefix reports whether s is usable in an SMSPolicy: "+" and 1 to 15
// digits, the first not zero.
func CheckPrefix(s string) error {
	if len(s) < 2 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return fmt.Errorf("%q is not an E.164 prefix (+ and 1 to 15 digits, the first not 0)", s)
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return fmt.Errorf("%q is not an E.164 prefix (+ and 1 to 15 digits, the first not 0)", s)
		}
	}
	return nil
}

// Deliverable is Check, then for SMS the policy: the whole of the
// dispatcher's per-recipient address decision.
func (p *SMSPolicy) Deliverable(ch notification.Channel, to string) error {
	if err := Check(ch, to); err != nil {
		return err
	}
	if ch == notification.SMS {
		return p.Permit(to)
	}
	return nil
}

// MaskEmail keeps the first character of the local part and the domain:
// "ana.diaz@example.com" → "a***@example.com". Enough to tell addresses
// apart in an incident without exposing them.
func MaskEmail(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 {
		return "***"
	}
	return addr[:1] + "***" + addr[at:]
}

// MaskPhone keeps the country-code prefix and the last two digits:
// "+447700900123" → "+44********23".
func MaskPhone(p string) string {
	if len(p) < 6 {
		return "***"
	}
	var b strings.Builder // one allocation: it is on every SMS outcome line
	b.Grow(len(p))
	b.WriteString(p[:3])
	for range len(p) - 5 {
		b.WriteByte('*')
	}
	b.WriteString(p[len(p)-2:])
	return b.String()
}

// MaskToken keeps the first six characters of a push token.
func MaskToken(t string) string {
	if len(t) <= 6 {
		return "***"
	}
	return t[:6] + "***"
}
