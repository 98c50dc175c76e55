package email

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gymhq/herald/prefs/unsubscribe"
)

// TLSMode says whether the SMTP session must be encrypted with STARTTLS.
type TLSMode string

const (
	// TLSMandatory requires STARTTLS: a server that does not offer it, or a
	// certificate that does not verify, fails the connection. Nothing, not
	// even the credentials, is sent before the session is encrypted.
	TLSMandatory TLSMode = "mandatory"
	// TLSOpportunistic uses STARTTLS when the server offers it and falls back
	// to plain text otherwise. Credentials are still never sent in plain text
	// except to a loopback address.
	TLSOpportunistic TLSMode = "opportunistic"
	// TLSNone never starts TLS. Only for a relay on the same host or a test
	// sink.
	TLSNone TLSMode = "none"
)

// Defaults for the zero values of Config.
const (
	DefaultTLS      = TLSMandatory
	DefaultPoolSize = 4
	DefaultTimeout  = 15 * time.Second
)

// Config configures the email channel's SMTP submission.
//
// Zero values mean the documented default. Validate reports the first
// problem; New validates too, so a Config that passes Validate always makes a
// Sender.
type Config struct {
	// Addr is host:port of the SMTP submission server (usually port 587).
	// Only STARTTLS is spoken; implicit TLS (port 465) is not.
	Addr string
	// Username and Password authenticate with AUTH PLAIN (or LOGIN when the
	// server offers only that). Both or neither.
	Username, Password string
	// TLS is "mandatory" (default), "opportunistic" or "none".
	TLS TLSMode
	// From is the RFC 5322 sender, optionally with a display name:
	// "Gym <no-reply@gym.example>". It is both the header and the envelope
	// sender.
	From string
	// PoolSize is how many SMTP connections are kept open and reused, and so
	// also how many messages are in flight at once (default 4). Submission
	// servers limit connections per account (SES, SendGrid: tens), and one
	// connection already carries a message per few round trips, so a small
	// pool per worker is enough; scale with workers, not with this.
	PoolSize int
	// Timeout bounds one Send end to end, including waiting for a pooled
	// connection, dialling, TLS, AUTH and the SMTP transaction (default 15s).
	// A shorter deadline on Send's context wins.
	Timeout time.Duration
	// HeloName is the name sent with EHLO; default the host name.
	HeloName string
	// MessageIDDomain is the right-hand side of the Message-ID
	// (<notification-id@domain>); default the domain of From.
	MessageIDDomain string
	// TLSConfig, when set, is used for STARTTLS (for example to trust a test
	// sink's self-signed certificate). Its ServerName defaults to Addr's host.
	TLSConfig *tls.Config

	// Unsubscribe, when set, makes a one-click unsubscribe link (RFC 8058)
	// for every message whose category the recipient may switch off
	// (unsubscribe.go); nil sends none.
	Unsubscribe *UnsubscribeLinks
}

// UnsubscribeLinks is how the channel makes one-click unsubscribe links.
type UnsubscribeLinks struct {
	Signer *unsubscribe.Signer
	// PublicURL is where the links point (HERALD_GATEWAY_PUBLIC_URL).
	PublicURL string
	// Now is the clock the links' expiry counts from; nil is time.Now.
	Now func() time.Time
}

// ConfigError is a configuration problem; Field names the Config field so a
// caller can translate it to the variable or flag the operator set.
type ConfigError struct {
	Field   string
	Problem string
}

func (e *ConfigError) Error() string { return "email config: " + e.Field + ": " + e.Problem }

func configErr(field, format string, args ...any) error {
	return &ConfigError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// Validate reports the first problem with c, naming the field. It does not
// modify c.
func (c *Config) Validate() error {
	host, err := splitAddr(c.Addr)
	if err != nil {
		return err
	}
	switch c.TLS {
	case "", TLSMandatory, TLSOpportunistic, TLSNone:
	default:
		return configErr("TLS", "%q is not one of mandatory, opportunistic, none", c.TLS)
	}
	if (c.Username == "") != (c.Password == "") {
		return configErr("Username", "Username and Password must be set together")
	}
	if c.Username != "" && c.TLS == TLSNone && !isLoopback(host) {
		return configErr("Username", "credentials would cross the network in plain text; TLS is none and %s is not a loopback address", host)
	}
	if strings.ContainsAny(c.Username, "\r\n\x00") || strings.ContainsAny(c.Password, "\r\n\x00") {
		return configErr("Username", "Username and Password must not contain CR, LF or NUL")
	}
	if c.From == "" {
		return configErr("From", "is empty")
	}
	from, err := mail.ParseAddress(c.From)
	if err != nil {
		return configErr("From", "%q is not an RFC 5322 address: %v", c.From, err)
	}
	if c.PoolSize < 0 {
		return configErr("PoolSize", "%d is negative", c.PoolSize)
	}
	if c.Timeout < 0 {
		return configErr("Timeout", "%s is negative", c.Timeout)
	}
	if c.HeloName != "" && (strings.ContainsAny(c.HeloName, " \t\r\n") || !isASCII(c.HeloName)) {
		return configErr("HeloName", "%q must be a single ASCII word", c.HeloName)
	}
	if l := c.Unsubscribe; l != nil {
		if l.Signer == nil {
			return configErr("Unsubscribe", "has no Signer")
		}
		if u, err := url.Parse(l.PublicURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" {
			return configErr("Unsubscribe", "PublicURL %q is not an absolute URL without a query; one-click unsubscribe links need one", l.PublicURL)
		}
	}
	if c.MessageIDDomain != "" {
		if !isDotAtom(c.MessageIDDomain) {
			return configErr("MessageIDDomain", "%q is not an ASCII domain", c.MessageIDDomain)
		}
	} else if d := domainOf(from.Address); !isDotAtom(d) {
		return configErr("MessageIDDomain", "is empty and the domain of From (%q) cannot be used in a Message-ID; set it", d)
	}
	return nil
}

// withDefaults returns c with zero fields set to their defaults. It assumes c
// is valid.
func (c Config) withDefaults() Config {
	if c.TLS == "" {
		c.TLS = DefaultTLS
	}
	if c.PoolSize == 0 {
		c.PoolSize = DefaultPoolSize
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MessageIDDomain == "" {
		from, _ := mail.ParseAddress(c.From)
		c.MessageIDDomain = domainOf(from.Address)
	}
	return c
}

func splitAddr(addr string) (host string, err error) {
	if addr == "" {
		return "", configErr("Addr", "is empty")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", configErr("Addr", "%q is not host:port: %v", addr, err)
	}
	if host == "" {
		return "", configErr("Addr", "%q has no host", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", configErr("Addr", "%q: port must be a number from 1 to 65535", addr)
	}
	return host, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func domainOf(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	return addr[i+1:]
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// isDotAtom reports whether s is an RFC 5322 dot-atom of ASCII atext, which
// is what both halves of a Message-ID must be.
func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '.' && !isAtext(s[i]) {
			return false
		}
	}
	return true
}

func isAtext(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", b) >= 0
}
