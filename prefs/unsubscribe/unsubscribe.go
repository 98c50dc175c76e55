// Package unsubscribe makes and checks the signed links of one-click
// unsubscribe (RFC 8058): the List-Unsubscribe header of every email whose
// category a person may switch off points at the gateway's
// POST /v1/unsubscribe?token=…, and the token alone says who, from what and
// until when, so the endpoint needs no session.
//
// A token binds a person id, a category and a channel to an expiry with
// HMAC-SHA256 under HERALD_UNSUBSCRIBE_SECRET. Whoever holds the email can
// unsubscribe its recipient from that category on that channel, and
// nothing else: not another person, not another category, not after the
// expiry. Forged, tampered, truncated and expired tokens are refused
// before anything is read from them.
//
// The package knows nothing of Redis, templates or HTTP; the email
// channel signs, the gateway verifies. It must never accept a token whose
// MAC it has not checked in constant time, and never say why a token with a
// bad MAC is bad (that would help forging one).
package unsubscribe

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gymhq/herald/notification"
)

// Path is the gateway's endpoint the links point at, below
// HERALD_GATEWAY_PUBLIC_URL.
const Path = "/v1/unsubscribe"

// MinSecretBytes is the shortest secret accepted: HMAC-SHA256's block of
// key material, as for the gateway's HS256 tokens.
const MinSecretBytes = 32

// DefaultTTL is how long a link works: long enough for a person to find an
// old email and act on it, short enough that a leaked mailbox archive does
// not carry working links for ever.
const DefaultTTL = 60 * 24 * time.Hour

// MaxTokenBytes bounds a token before it is decoded: a person id of 128
// characters makes one of about 280.
const MaxTokenBytes = 1024

// Errors of Verify. ErrInvalid covers every token whose signature does not
// check (forged, tampered, cut short) without saying which.
var (
	ErrInvalid = errors.New("unsubscribe: not a valid link")
	ErrExpired = errors.New("unsubscribe: the link has expired")
)

// Token is what a link says.
type Token struct {
	Person   string
	Category string
	Channel  notification.Channel
	Expires  time.Time
}

// Signer signs and verifies tokens with one secret. Safe for concurrent
// use.
type Signer struct {
	key []byte
	ttl time.Duration
}

// domain separates these MACs from any other use of the same secret.
const domain = "herald/unsubscribe/v1\n"

// NewSigner returns a Signer for secret (at least MinSecretBytes) whose
// tokens last ttl (0: DefaultTTL).
func NewSigner(secret []byte, ttl time.Duration) (*Signer, error) {
	if len(secret) < MinSecretBytes {
		return nil, fmt.Errorf("unsubscribe: the secret is %d bytes; at least %d are needed", len(secret), MinSecretBytes)
	}
	if ttl < 0 {
		return nil, fmt.Errorf("unsubscribe: negative lifetime %s", ttl)
	}
	if ttl == 0 {
		ttl = DefaultTTL
	}
	return &Signer{key: append([]byte(nil), secret...), ttl: ttl}, nil
}

// TTL is how long the tokens Issue makes last.
func (s *Signer) TTL() time.Duration { return s.ttl }

// Issue signs a token for person, category and ch that expires TTL after
// now.
func (s *Signer) Issue(person, category string, ch notification.Channel, now time.Time) (string, error) {
	return s.Sign(Token{Person: person, Category: category, Channel: ch, Expires: now.Add(s.ttl)})
}

// The parts' rules. They exclude the separator and keep a token within
// MaxTokenBytes; the person id is the gateway's (a JWT sub).
var (
	personRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$`)
	categoryRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)
	channelRE  = regexp.MustCompile(`^[a-z][a-z0-9]{1,15}$`)
	tokenRE    = regexp.MustCompile(`^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`)
	expiryRE   = regexp.MustCompile(`^[1-9][0-9]{0,11}$`)
)

// Sign signs t as it is; its expiry is kept to the second.
func (s *Signer) Sign(t Token) (string, error) {
	switch {
	case !personRE.MatchString(t.Person):
		return "", errors.New("unsubscribe: not a person id")
	case !categoryRE.MatchString(t.Category):
		return "", fmt.Errorf("unsubscribe: %q is not a category name", t.Category)
	case !channelRE.MatchString(string(t.Channel)):
		return "", fmt.Errorf("unsubscribe: %q is not a channel name", t.Channel)
	case t.Expires.Unix() <= 0 || t.Expires.Unix() >= 1e12:
		return "", errors.New("unsubscribe: no expiry, or one past the year 33000")
	}
	payload := strings.Join([]string{t.Person, t.Category, string(t.Channel), strconv.FormatInt(t.Expires.Unix(), 10)}, "|")
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString(s.mac([]byte(payload))), nil
}

func (s *Signer) mac(payload []byte) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(domain))
	m.Write(payload)
	return m.Sum(nil)
}

// Verify returns what token says if s signed it and it has not expired at
// now: ErrInvalid for anything else s did not sign as it is, ErrExpired
// for one past its expiry.
func (s *Signer) Verify(token string, now time.Time) (Token, error) {
	// Only the alphabet Sign writes: base64 decoding skips line breaks,
	// and a token must have one spelling.
	if len(token) > MaxTokenBytes || !tokenRE.MatchString(token) {
		return Token{}, ErrInvalid
	}
	p64, m64, ok := strings.Cut(token, ".")
	if !ok {
		return Token{}, ErrInvalid
	}
	enc := base64.RawURLEncoding.Strict()
	payload, err1 := enc.DecodeString(p64)
	mac, err2 := enc.DecodeString(m64)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, s.mac(payload)) {
		return Token{}, ErrInvalid
	}
	// Signed by s: the parts are what Sign wrote. They are checked again
	// all the same, so that a bug in an old signer cannot become a key
	// nobody expected.
	parts := strings.Split(string(payload), "|")
	if len(parts) != 4 || !personRE.MatchString(parts[0]) || !categoryRE.MatchString(parts[1]) || !channelRE.MatchString(parts[2]) {
		return Token{}, ErrInvalid
	}
	if !expiryRE.MatchString(parts[3]) {
		return Token{}, ErrInvalid
	}
	exp, _ := strconv.ParseInt(parts[3], 10, 64)
	t := Token{Person: parts[0], Category: parts[1], Channel: notification.Channel(parts[2]), Expires: time.Unix(exp, 0).UTC()}
	if !now.Before(t.Expires) {
		return t, ErrExpired
	}
	return t, nil
}

// Link is the URL a token is used at: publicURL (the gateway as the
// internet reaches it, perhaps with a path prefix) + Path + ?token=.
func Link(publicURL, token string) string {
	return strings.TrimRight(publicURL, "/") + Path + "?token=" + token
}
