package email

import (
	"fmt"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/prefs/unsubscribe"
)

// oneClick is the List-Unsubscribe-Post value of RFC 8058: it tells a
// mailbox provider that a POST to the List-Unsubscribe URL unsubscribes at
// once, with no page to go through.
const oneClick = "List-Unsubscribe=One-Click"

// setUnsubscribe gives msg the one-click unsubscribe headers (RFC 8058)
// when m's category may be switched off by its recipient and the sender
// has a signer: List-Unsubscribe with a signed, expiring HTTPS link to the
// gateway, and List-Unsubscribe-Post. A message of a required category
// (transactional), or one the renderer did not say the recipient and
// category of, gets neither: mailbox providers show an unsubscribe button
// for the header, and a person must not be offered to stop messages they
// cannot stop. The relay's DKIM signature must cover both headers (SES,
// SendGrid and Postmark sign every header they are given).
func (s *Sender) setUnsubscribe(msg *gomail.Msg, m *channels.Message) {
	l := s.cfg.Unsubscribe
	if l == nil || !m.Unsubscribable || m.RecipientID == "" || m.Category == "" {
		return
	}
	now := time.Now()
	if l.Now != nil {
		now = l.Now()
	}
	tok, err := l.Signer.Issue(m.RecipientID, m.Category, notification.Email, now)
	if err != nil {
		// A recipient id no link can carry (unsubscribe's person rule is
		// the gateway's): the message goes without, as it would without
		// a signer, rather than not at all.
		return
	}
	// Preformatted: the URL has no spaces for go-mail to fold at, and no
	// character that needs encoding.
	msg.SetGenHeaderPreformatted(gomail.HeaderListUnsubscribe, "<"+unsubscribe.Link(l.PublicURL, tok)+">")
	msg.SetGenHeaderPreformatted(gomail.HeaderListUnsubscribePost, oneClick)
}

// Unsubscriber is the one-click unsubscribe links that c configures
// (HERALD_UNSUBSCRIBE_SECRET, HERALD_GATEWAY_PUBLIC_URL,
// HERALD_UNSUBSCRIBE_TTL): nil when they are off, in which case emails
// carry no List-Unsubscribe header.
func Unsubscriber(c *config.Config) (*UnsubscribeLinks, error) {
	if c.Gateway.UnsubscribeSecret == "" || c.Gateway.PublicURL == "" {
		return nil, nil
	}
	s, err := unsubscribe.NewSigner([]byte(c.Gateway.UnsubscribeSecret), c.Gateway.UnsubscribeTTL)
	if err != nil {
		return nil, fmt.Errorf("HERALD_UNSUBSCRIBE_SECRET: %w", err)
	}
	return &UnsubscribeLinks{Signer: s, PublicURL: c.Gateway.PublicURL}, nil
}
