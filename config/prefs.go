package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"
)

// The variables of one-click unsubscribe (RFC 8058; docs/preferences.md):
// the email role signs a link into every email a person may unsubscribe
// from, the gateway role takes it. Appended after the gateway's.
func init() {
	g := func(c *Config) *Gateway { return &c.Gateway }
	registry = append(registry,
		&variable{
			name: "HERALD_GATEWAY_PUBLIC_URL", group: "Gateway",
			doc: "The gateway as the internet reaches it, an `https://` URL, perhaps with a path prefix (`https://notify.example.com`): " +
				"the one-click unsubscribe links the email role puts in emails point at `/v1/unsubscribe` below it. " +
				"Set with `HERALD_UNSUBSCRIBE_SECRET`; unset, emails carry no `List-Unsubscribe` header, which bulk senders need.",
			scope: []Role{RoleEmail},
			bind:  text(func(c *Config) *string { return &g(c).PublicURL }, "an https:// URL", publicURL),
		},
		&variable{
			name: "HERALD_UNSUBSCRIBE_SECRET", group: "Unsubscribe",
			doc: "Key that one-click unsubscribe links are signed with (HMAC-SHA256), at least 32 bytes, the same for the email and gateway roles. " +
				"A link binds a person, a category and the email channel to an expiry; a forged, altered or expired one is refused. " +
				"Changing the key invalidates every link already sent. Unset: no `List-Unsubscribe` header and no `/v1/unsubscribe` endpoint.",
			secret: true, scope: []Role{RoleEmail, RoleGateway},
			bind: text(func(c *Config) *string { return &g(c).UnsubscribeSecret }, "at least 32 bytes", func(s string) error {
				if len(s) < 32 {
					return errors.New("is shorter than 32 bytes")
				}
				return nil
			}),
			rule: func(c *Config) error {
				// The email role needs both to make a link; the gateway
				// needs only the key to check one.
				if !c.Role.Runs(RoleEmail) {
					return nil
				}
				switch secret, public := g(c).UnsubscribeSecret != "", g(c).PublicURL != ""; {
				case secret && !public:
					return errors.New("is set but HERALD_GATEWAY_PUBLIC_URL is not; the email role needs both to make unsubscribe links")
				case public && !secret:
					return errors.New("is not set but HERALD_GATEWAY_PUBLIC_URL is; the email role needs both to make unsubscribe links")
				}
				return nil
			},
		},
		&variable{
			name: "HERALD_UNSUBSCRIBE_TTL", group: "Unsubscribe", def: "1440h",
			doc: "How long a one-click unsubscribe link works after its email was sent (default 60 days): " +
				"long enough for a person to act on an old email, short enough that an archived mailbox does not hold working links for ever. " +
				"An expired link shows a page pointing to the preference centre.",
			scope: []Role{RoleEmail},
			bind:  duration(func(c *Config) *time.Duration { return &g(c).UnsubscribeTTL }, 24*time.Hour, 8760*time.Hour, false),
		},
	)
}

// publicURL accepts an https URL with a host and no query, fragment or
// credentials; http only on a loopback host (herald dev).
func publicURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q is not a URL https://host[/prefix] (no query, fragment or credentials)", s)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); h == "localhost" || ip != nil && ip.IsLoopback() {
			return nil
		}
	}
	return fmt.Errorf("%q is not an https:// URL; mail clients refuse one-click unsubscribe over plain http", s)
}
