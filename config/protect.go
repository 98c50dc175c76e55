package config

import "time"

// Provider protection variables (issue 4): the fleet-wide send rates and
// the circuit breaker. Kept in their own block, appended to the registry.
func init() {
	registry = append(registry,
		&variable{
			name: "HERALD_EMAIL_RATE", group: "Provider protection", def: "0",
			doc: "Emails per second the whole fleet may submit to the SMTP server; 0 is unlimited. " +
				"The budget lives in Redis and is shared by every email worker of every pod, so adding replicas does not raise it; " +
				"a send over budget waits (it is never dropped), and the wait shows in `herald_rate_limit_wait_seconds`. " +
				"Bursts of up to one second's budget pass at once.",
			scope: []Role{RoleEmail},
			bind:  integer(func(c *Config) *int { return &c.EmailRate }, 0, 1_000_000),
		},
		&variable{
			name: "HERALD_SMS_RATE", group: "Provider protection", def: "0",
			doc: "SMS per second the whole fleet may send through Twilio; 0 is unlimited. " +
				"Set it to the account's (or Messaging Service's) throughput so that Twilio queues nothing and answers no 429s.",
			scope: []Role{RoleSMS},
			bind:  integer(func(c *Config) *int { return &c.SMSRate }, 0, 1_000_000),
		},
		&variable{
			name: "HERALD_PUSH_RATE", group: "Provider protection", def: "0",
			doc:   "Push messages per second the whole fleet may send through FCM; 0 is unlimited (FCM's own quota is high).",
			scope: []Role{RolePush},
			bind:  integer(func(c *Config) *int { return &c.PushRate }, 0, 1_000_000),
		},
		&variable{
			name: "HERALD_BREAKER_FAILURES", group: "Provider protection", def: "10",
			doc: "Consecutive retryable provider failures (timeouts, refused connections, 5xx, 429, SMTP 4xx) that open a channel's circuit breaker. " +
				"While it is open the channel stops consuming (nothing is claimed and no retry is spent) until a probe gets through. " +
				"Permanent failures about one recipient (an invalid number, a gone token) never count. " +
				"Lower pauses sooner on an outage; higher tolerates more scattered errors: at the default of 10, a provider failing 10 % of calls at random " +
				"opens it about once in ten billion calls, while a real outage opens it within the first few records.",
			scope: []Role{RoleChannels},
			bind:  integer(func(c *Config) *int { return &c.BreakerFailures }, 1, 10_000),
		},
		&variable{
			name: "HERALD_BREAKER_OPEN_FOR", group: "Provider protection", def: "30s",
			doc: "How long an open breaker keeps its channel paused before letting one probe through. " +
				"A failed probe pauses it for this long again; a successful one resumes the channel.",
			scope: []Role{RoleChannels},
			bind:  duration(func(c *Config) *time.Duration { return &c.BreakerOpenFor }, 100*time.Millisecond, time.Hour, false),
		},
	)
}
