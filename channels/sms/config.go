package sms

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"time"

	"github.com/gymhq/herald/address"
)

// Production defaults.
const (
	DefaultAPIURL  = "https://api.twilio.com"
	DefaultTimeout = 10 * time.Second
)

// DefaultConfig holds the defaults; a zero APIURL or Timeout also means the
// default.
var DefaultConfig = Config{APIURL: DefaultAPIURL, Timeout: DefaultTimeout}

// Config configures the Twilio sender (docs/contracts.md §5, HERALD_TWILIO_*).
type Config struct {
	// AccountSID ("AC" and 32 hex digits) and AuthToken authenticate with
	// HTTP basic auth.
	AccountSID string
	AuthToken  string
	// From is the sender: an E.164 number, a short code or an alphanumeric
	// sender ID (up to 11 letters, digits and spaces, at least one letter).
	// Either From or MessagingServiceSID is required; with both, Twilio
	// sends from From, which must belong to the service's sender pool.
	From string
	// MessagingServiceSID ("MG" and 32 hex digits) lets Twilio pick the
	// sender from a Messaging Service's pool.
	MessagingServiceSID string
	// APIURL is Twilio's base URL, scheme and host (and optionally a path
	// prefix); tests and staging point it at a fake.
	APIURL string
	// ValidityPeriod, when set, is how long Twilio may keep a message queued
	// before dropping it: whole seconds from 1s to 10h. An SMS "your class
	// starts in 10 minutes" is worse than none an hour late.
	ValidityPeriod time.Duration
	// Timeout bounds one Send, including reading the answer.
	Timeout time.Duration
	// StatusCallback, when set, is the absolute URL Twilio posts delivery
	// status updates to.
	StatusCallback string
	// Policy decides which numbers may be texted; nil means
	// address.DefaultSMSPolicy. The dispatcher already refused the others
	// per recipient; Send refuses them again, so that no path (a replayed
	// or hand-made notification, a dispatcher with another policy) reaches
	// Twilio with a premium-rate number.
	Policy *address.SMSPolicy
}

var (
	accountSIDPattern = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	serviceSIDPattern = regexp.MustCompile(`^MG[0-9a-fA-F]{32}$`)
	// twilio-go refuses credentials that are not alphanumeric (its errors
	// 21222/21224) before sending anything; catch that at start instead.
	alphanumericPattern = regexp.MustCompile(`^[A-Za-z0-9]+$`)
	e164Pattern         = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)
	shortCodePattern    = regexp.MustCompile(`^[0-9]{5,6}$`)
	senderIDPattern     = regexp.MustCompile(`^[A-Za-z0-9 ]{1,11}$`)
	letterPattern       = regexp.MustCompile(`[A-Za-z]`)
)

// Validate reports the first problem with c, naming the field. Zero APIURL
// and Timeout are valid and mean the defaults.
func (c *Config) Validate() error {
	switch {
	case c.AccountSID == "":
		return errors.New("AccountSID is required")
	case !accountSIDPattern.MatchString(c.AccountSID):
		return fmt.Errorf("AccountSID %q is not \"AC\" followed by 32 hex digits", c.AccountSID)
	case c.AuthToken == "":
		return errors.New("AuthToken is required")
	case !alphanumericPattern.MatchString(c.AuthToken):
		return errors.New("AuthToken must be letters and digits only")
	case c.From == "" && c.MessagingServiceSID == "":
		return errors.New("From or MessagingServiceSID is required")
	case c.From != "" && !validSender(c.From):
		return fmt.Errorf("From %q is not an E.164 number, a short code or an alphanumeric sender ID", c.From)
	case c.MessagingServiceSID != "" && !serviceSIDPattern.MatchString(c.MessagingServiceSID):
		return fmt.Errorf("MessagingServiceSID %q is not \"MG\" followed by 32 hex digits", c.MessagingServiceSID)
	case c.ValidityPeriod < 0 || c.ValidityPeriod > 0 && (c.ValidityPeriod < time.Second || c.ValidityPeriod > 36000*time.Second):
		return fmt.Errorf("ValidityPeriod %s is outside 1s..10h", c.ValidityPeriod)
	case c.ValidityPeriod%time.Second != 0:
		return fmt.Errorf("ValidityPeriod %s is not whole seconds", c.ValidityPeriod)
	case c.Timeout < 0:
		return fmt.Errorf("Timeout %s is negative", c.Timeout)
	}
	if c.APIURL != "" {
		if err := checkURL(c.APIURL, false); err != nil {
			return fmt.Errorf("APIURL %w", err)
		}
	}
	if c.StatusCallback != "" {
		if err := checkURL(c.StatusCallback, true); err != nil {
			return fmt.Errorf("StatusCallback %w", err)
		}
	}
	return nil
}

func validSender(s string) bool {
	return e164Pattern.MatchString(s) || shortCodePattern.MatchString(s) ||
		senderIDPattern.MatchString(s) && letterPattern.MatchString(s)
}

func checkURL(s string, queryOK bool) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %v", s, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	if u.Fragment != "" || u.RawQuery != "" && !queryOK {
		return fmt.Errorf("%q must not have a query or fragment", s)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.APIURL == "" {
		c.APIURL = DefaultAPIURL
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	return c
}
