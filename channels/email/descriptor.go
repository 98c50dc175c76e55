package email

import (
	"strings"

	"github.com/gymhq/herald/address"
	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/channels/failover"
	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/notification"
)

// Descriptor is the email channel as herald knows it (channels.Descriptor).
var Descriptor = &channels.Descriptor{
	Spec: notification.Spec{
		Name:  notification.Email,
		Check: address.Email,
		Mask:  address.MaskEmail,
		// Mailbox names are case-insensitive in practice, and a bounce
		// must match however the address was typed.
		Normalize: func(a string) string { return strings.ToLower(strings.TrimSpace(a)) },
		// invalid_address is a 5.1.x bounce: the classifier claims it only
		// on an enhanced code or a RCPT TO 550/551/553, never a content
		// verdict.
		SuppressOn: []string{"invalid_address"},
	},
	Doc:          "Email through an SMTP submission relay (go-mail), with text, HTML and an optional calendar invite.",
	Provider:     "smtp",
	AddressField: "email",
	Addresses: func(p *events.Person) []string {
		if p.Email == "" {
			return nil
		}
		return []string{p.Email}
	},
	Parts: []channels.Part{
		{File: "subject.txt", Field: channels.FieldSubject, OneLine: true, Limit: 150, Name: "subject"},
		{File: "txt", Field: channels.FieldText, EndLine: true},
		{File: "html", Field: channels.FieldHTML, HTML: true},
	},
	// Several relays in HERALD_SMTP_ADDR share the other settings and
	// fail over to each other (channels/failover).
	Settings: settings,
	New: func(b channels.Build) (channels.Sender, error) {
		c := b.Config
		links, err := Unsubscriber(c)
		if err != nil {
			return nil, err
		}
		return failover.FromList(notification.Email, c, c.SMTPAddr, func(addr string) (channels.Sender, error) {
			return New(Config{
				Addr: addr, Username: c.SMTPUsername, Password: c.SMTPPassword,
				TLS: TLSMode(c.SMTPTLS), From: c.EmailFrom, PoolSize: c.SMTPPoolSize, Timeout: c.SendTimeout,
				TLSConfig:   b.TLS,
				Unsubscribe: links,
			})
		})
	},
	Rate:   func(c *config.Config) int { return c.EmailRate },
	Deploy: channels.Deploy{Secret: &channels.DeploySecret{Name: "smtp", Key: "password", Env: "HERALD_SMTP_PASSWORD_FILE"}},
	Dev:    dev,
}
