package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Gateway is the gateway role's settings: where it listens, how it checks
// the bearer tokens of people's sessions, and the limits that keep one
// person, one slow client or a flood of connections from costing the pod
// its memory.
type Gateway struct {
	Addr string
	// JWTSecret is the HS256 key (from HERALD_GATEWAY_JWT_SECRET or its
	// _FILE form); JWKSFile the RS256 public keys. Exactly one is set.
	JWTSecret string
	JWKSFile  string
	// MaxConnections bounds the pod's open streams, and
	// MaxPerPerson one person's (tabs and devices).
	MaxConnections int
	MaxPerPerson   int
	// WriteTimeout is how long a write to a client may take before the
	// client is dropped as too slow.
	WriteTimeout time.Duration
	// Heartbeat is how often an idle stream gets a keep-alive.
	Heartbeat time.Duration
	// AllowedOrigins are the browser origins allowed to call the gateway
	// (CORS and WebSocket); empty is same-origin only, "*" any.
	AllowedOrigins []string

	// PublicURL is the gateway as people's mail clients reach it (the
	// one-click unsubscribe links point below it); UnsubscribeSecret signs
	// those links and UnsubscribeTTL is how long one works. Read by the
	// email role, which makes the links, and the gateway, which takes
	// them (prefs.go).
	PublicURL         string
	UnsubscribeSecret string
	UnsubscribeTTL    time.Duration
}

// The gateway's variables, appended to the registry.
func init() {
	g := func(c *Config) *Gateway { return &c.Gateway }
	registry = append(registry,
		&variable{
			name: "HERALD_GATEWAY_ADDR", group: "Gateway", def: ":8080",
			doc: "Listen address of the gateway's HTTP API: `/v1/feed`, `/v1/feed/stream` (Server-Sent Events), `/v1/feed/ws` (WebSocket) and `/v1/feed/{id}/read`. " +
				"Put any number of gateway pods behind a plain load balancer; no sticky sessions are needed.",
			scope: []Role{RoleGateway},
			bind:  text(func(c *Config) *string { return &g(c).Addr }, "[host]:port", hostPort(false, 0)),
		},
		&variable{
			name: "HERALD_GATEWAY_JWT_SECRET", group: "Gateway",
			doc: "HS256 key that the bearer tokens of people's sessions are signed with, at least 32 bytes; `sub` is the person's id and `exp` is required. " +
				"Set this or `HERALD_GATEWAY_JWKS_FILE`.",
			secret: true, scope: []Role{RoleGateway}, requiredDoc: "gateway, all (this or `HERALD_GATEWAY_JWKS_FILE`)",
			bind: text(func(c *Config) *string { return &g(c).JWTSecret }, "at least 32 bytes", func(s string) error {
				if len(s) < 32 {
					return errors.New("is shorter than 32 bytes")
				}
				return nil
			}),
		},
		&variable{
			name: "HERALD_GATEWAY_JWKS_FILE", group: "Gateway",
			doc: "A JSON Web Key Set of RSA public keys that the bearer tokens are signed with (RS256), selected by the token's `kid`. " +
				"Set this or `HERALD_GATEWAY_JWT_SECRET`; read at start, so a rotation is a restart.",
			scope: []Role{RoleGateway}, requiredDoc: "gateway, all (this or `HERALD_GATEWAY_JWT_SECRET`)",
			bind: text(func(c *Config) *string { return &g(c).JWKSFile }, "path to a JWKS file", func(s string) error {
				if _, err := os.Stat(s); err != nil {
					return fmt.Errorf("%q cannot be read: %v", s, errors.Unwrap(err))
				}
				return nil
			}),
			rule: func(c *Config) error {
				switch {
				case g(c).JWKSFile == "" && g(c).JWTSecret == "":
					return requiredUnless("HERALD_GATEWAY_JWT_SECRET")
				case g(c).JWKSFile != "" && g(c).JWTSecret != "":
					return errors.New("is set and so is HERALD_GATEWAY_JWT_SECRET; set one")
				}
				return nil
			},
		},
		&variable{
			name: "HERALD_GATEWAY_MAX_CONNECTIONS", group: "Gateway", def: "50000",
			doc: "Open streams (SSE and WebSocket) one gateway pod holds; a connection beyond it gets 503 and the client retries, reaching another pod. " +
				"An idle SSE stream costs about 6 KB of the pod's memory (measured: BENCHMARKS.md, live-fanout; docs/inapp.md).",
			scope: []Role{RoleGateway},
			bind:  integer(func(c *Config) *int { return &g(c).MaxConnections }, 1, 10_000_000),
		},
		&variable{
			name: "HERALD_GATEWAY_MAX_CONNECTIONS_PER_PERSON", group: "Gateway", def: "10",
			doc:   "Open streams one person may hold on one pod (tabs and devices); the oldest is closed when a new one would pass it.",
			scope: []Role{RoleGateway},
			bind:  integer(func(c *Config) *int { return &g(c).MaxPerPerson }, 1, 1000),
		},
		&variable{
			name: "HERALD_GATEWAY_WRITE_TIMEOUT", group: "Gateway", def: "10s",
			doc: "How long a write to a client may block. A client that does not read for this long is disconnected: " +
				"nothing is queued for it, so a slow client costs no memory, and it resumes where it was when it reconnects.",
			scope: []Role{RoleGateway},
			bind:  duration(func(c *Config) *time.Duration { return &g(c).WriteTimeout }, 100*time.Millisecond, 5*time.Minute, false),
		},
		&variable{
			name: "HERALD_GATEWAY_HEARTBEAT", group: "Gateway", def: "25s",
			doc:   "How often an idle stream gets a keep-alive (an SSE comment, a WebSocket ping), so that load balancers' idle timeouts (often 60 s) do not cut it.",
			scope: []Role{RoleGateway},
			bind:  duration(func(c *Config) *time.Duration { return &g(c).Heartbeat }, time.Second, 10*time.Minute, false),
		},
		&variable{
			name: "HERALD_GATEWAY_ALLOWED_ORIGINS", group: "Gateway",
			doc: "Comma-separated browser origins (`https://app.example.com`) allowed to call the gateway from a page: CORS answers and WebSocket upgrades. " +
				"Empty allows same-origin pages only; `*` allows any, which is safe for bearer tokens but not needed when the app shares the gateway's origin.",
			scope: []Role{RoleGateway},
			bind: list(func(c *Config) *[]string { return &g(c).AllowedOrigins }, "comma-separated origins, or *", func(o string) error {
				if o != "*" && !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") {
					return fmt.Errorf("%q is not an origin (https://host[:port]) or *", o)
				}
				return nil
			}),
		},
	)
}
