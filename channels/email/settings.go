package email

import (
	"errors"

	"github.com/gymhq/herald/config"
)

// settings are the email channel's variables, declared here once
// (channels.Descriptor.Settings); the Config fields they bind are read by
// New and herald dev.
var settings = []config.Setting{
	{
		Name: "HERALD_SMTP_ADDR", Group: "Email", Required: true,
		Doc: "SMTP submission server, `host:port` (usually port 587). " +
			"A comma-separated list is several relays sharing the other SMTP settings, each with an optional `*weight` (default 1), " +
			"for example `smtp-a.example.com:587*3,smtp-b.example.com:587`: mail is spread by weight, each relay has its own circuit breaker, " +
			"and a relay that fails leaves the rotation within `HERALD_BREAKER_FAILURES` tries and comes back when its probe succeeds; " +
			"a message's id and Message-ID do not depend on the relay that sends it.",
		Bind: config.Text(func(c *config.Config) *string { return &c.SMTPAddr }, "host:port[*weight],…", config.WeightedList(config.HostPort(true, 1))),
	},
	{
		Name: "HERALD_SMTP_USERNAME", Group: "Email",
		Doc:  "SMTP user name. Empty sends without authenticating, which only a local relay should accept.",
		Bind: config.Text(func(c *config.Config) *string { return &c.SMTPUsername }, "", nil),
	},
	{
		Name: "HERALD_SMTP_PASSWORD", Group: "Email", Secret: true,
		Doc:  "SMTP password; prefer `HERALD_SMTP_PASSWORD_FILE`.",
		Bind: config.Text(func(c *config.Config) *string { return &c.SMTPPassword }, "", nil),
	},
	{
		Name: "HERALD_SMTP_TLS", Group: "Email", Default: "mandatory",
		Doc: "`mandatory`: STARTTLS is required, and a server that does not offer it gets neither mail nor credentials. " +
			"`opportunistic`: STARTTLS when offered, plaintext otherwise, so anyone on the path can strip it and read both. " +
			"`none`: never TLS, for a relay on localhost or a test sink.",
		Bind: config.Enum(func(c *config.Config) *config.SMTPTLS { return &c.SMTPTLS }, config.SMTPTLSMandatory, config.SMTPTLSOpportunistic, config.SMTPTLSNone),
	},
	{
		Name: "HERALD_EMAIL_FROM", Group: "Email", Required: true,
		Doc: "Sender of every email, an RFC 5322 address; a display name is allowed: `Gym Team <hello@example.com>`. " +
			"The domain must be one the SMTP provider may send for (SPF, DKIM), or mail lands in spam.",
		Bind: config.Text(func(c *config.Config) *string { return &c.EmailFrom }, "an email address", config.EmailAddress),
	},
	{
		Name: "HERALD_SMTP_POOL_SIZE", Group: "Email", Default: "4",
		Doc: "SMTP connections each email worker keeps open. " +
			"Sending waits for a free connection, so this, not `HERALD_MAX_IN_FLIGHT`, bounds concurrent emails per process. " +
			"Providers limit concurrent connections per account across all pods: keep pool size × pods under that limit.",
		Bind: config.Integer(func(c *config.Config) *int { return &c.SMTPPoolSize }, 1, 64),
	},
	{
		Name: BounceTokenVar, Group: "Email", Secret: true, Kind: "string", Accepts: "at least 16 characters",
		Doc: "Turns on email delivery receipts: the email role's HTTP port takes bounces (RFC 3464 delivery status notifications, " +
			"as a bounce mailbox's pipe or an inbound-mail webhook forwards them) at `POST /v1/receipts/smtp` with `Authorization: Bearer <token>`. " +
			"A bounce marks its notification bounced in `herald trace` and `herald_delivery_receipts_total`, and a 5.1.x failure suppresses the address. " +
			"Unset: no email receipts.",
		Check: func(s string) error {
			if len(s) < 16 {
				return errors.New("is shorter than 16 characters")
			}
			return nil
		},
	},
}

// BounceTokenVar authenticates SMTP bounces posted to herald
// (receipts.BouncePath).
const BounceTokenVar = "HERALD_SMTP_BOUNCE_TOKEN"
