package config

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/gymhq/herald/address"
)

// registry is every variable herald reads, in the order the docs list them
// and errors are reported. A rule may only look at variables above it.
//
// To add a variable: add a field to Config, add an entry here (or, for a
// channel's own, a Setting in its folder), run `go test ./config -update`
// to regenerate docs/configuration.md.
var registry = []*variable{
	// Kafka.
	{
		name: "HERALD_KAFKA_BROKERS", group: "Kafka",
		doc: "Seed brokers, comma-separated `host:port`. " +
			"They are only where the client starts: it learns the rest of the cluster from them, " +
			"so two or three seeds let a worker start while one broker is down.",
		required: everyRole,
		bind:     list(func(c *Config) *[]string { return &c.KafkaBrokers }, "host:port,...", hostPort(true, 1)),
	},
	{
		name: "HERALD_EVENTS_TOPIC", group: "Kafka", def: "gym.bookings.v1",
		doc: "Topic of booking events the dispatcher consumes. " +
			"herald never creates or alters it: it belongs to the booking service. " +
			"A dispatcher started before it exists consumes its other topic meanwhile and starts on this one within about 5 s of its creation.",
		bind: text(func(c *Config) *string { return &c.EventsTopic }, "a Kafka topic name", kafkaName),
	},
	{
		name: "HERALD_TOPIC_PARTITIONS", group: "Kafka", def: "12",
		doc: "Partitions of a `herald.*` topic herald creates because it is missing; existing topics are left as they are. " +
			"A topic's partitions cap how many workers of its role share the work: pods beyond that count sit idle as standbys. " +
			"Adding partitions later moves recipients to other partitions, so choose for the largest fleet you expect; " +
			"running workers rebalance onto added partitions within about 5 s, without a restart.",
		bind: integer(func(c *Config) *int { return &c.TopicPartitions }, 1, 10000),
	},
	{
		name: "HERALD_TOPIC_REPLICATION", group: "Kafka", def: "-1",
		doc: "Replication factor of a `herald.*` topic herald creates. " +
			"-1 uses the broker's `default.replication.factor`, which is right unless the cluster's default is wrong for queued notifications; " +
			"below 3 a single broker loss can lose queued and retrying messages.",
		bind: integer(func(c *Config) *int { return &c.TopicReplication }, 1, 32, -1),
	},
	{
		name: "HERALD_SESSION_TIMEOUT", group: "Kafka", def: "10s",
		doc: "How long the group coordinator waits without a heartbeat before it declares a worker dead and gives its partitions to others. " +
			"Shorter moves work off a crashed pod sooner; too short turns GC pauses and network blips into needless rebalances. " +
			"Brokers only accept values within `group.min.session.timeout.ms` and `group.max.session.timeout.ms` (by default 6s and 30m).",
		bind: duration(func(c *Config) *time.Duration { return &c.SessionTimeout }, 6*time.Second, 5*time.Minute, false),
	},
	{
		name: "HERALD_REBALANCE_TIMEOUT", group: "Kafka", def: "10s",
		doc: "How long the coordinator waits for every member to rejoin during a rebalance. " +
			"The whole group stops consuming until then, so a longer value means longer pauses when a member is slow; " +
			"a member that has not rejoined in time is dropped from the group. " +
			"Partitions a rebalance takes from a worker are drained within 80% of this or of `HERALD_SESSION_TIMEOUT`, whichever is shorter: " +
			"no heartbeat goes out between two generations, so a longer drain would get the worker dropped and its partitions handed on while its sends still run. " +
			"To give a slow provider's sends longer, raise both.",
		bind: duration(func(c *Config) *time.Duration { return &c.RebalanceTimeout }, time.Second, 10*time.Minute, false),
	},
	{
		name: "HERALD_HEARTBEAT_INTERVAL", group: "Kafka", def: "1s",
		doc: "How often a worker tells the coordinator it is alive. " +
			"Must be less than a third of `HERALD_SESSION_TIMEOUT`, so that one or two lost heartbeats do not end the session.",
		bind: duration(func(c *Config) *time.Duration { return &c.HeartbeatInterval }, 100*time.Millisecond, time.Minute, false),
		rule: func(c *Config) error {
			if c.HeartbeatInterval*3 >= c.SessionTimeout {
				return fmt.Errorf("%s must be less than a third of HERALD_SESSION_TIMEOUT (%s)",
					fmtDuration(c.HeartbeatInterval), fmtDuration(c.SessionTimeout))
			}
			return nil
		},
	},
	{
		name: "HERALD_COMMIT_INTERVAL", group: "Kafka", def: "500ms",
		doc: "How often offsets of fully processed messages are committed. " +
			"After a crash up to this much work is consumed again; the idempotency keys stop it from being sent twice, at the cost of a Redis lookup each. " +
			"Shorter means less replay and more commit requests to the brokers.",
		bind: duration(func(c *Config) *time.Duration { return &c.CommitInterval }, 10*time.Millisecond, time.Minute, false),
	},
	{
		name: "HERALD_INSTANCE_ID", group: "Kafka",
		dynamicDefault: os.Hostname, dynamicDoc: "the host name",
		doc: "This process's name: its Kafka client id and the prefix of the owner of every idempotency lease it takes. " +
			"It must be unique among running workers, or one worker could mistake another's lease for its own; " +
			"the default, the host name, is the pod name on Kubernetes, which is.",
		required: everyRole,
		bind:     text(func(c *Config) *string { return &c.InstanceID }, "A-Z a-z 0-9 . _ -", kafkaName),
	},

	// Delivery.
	{
		name: "HERALD_MAX_IN_FLIGHT", group: "Delivery", def: "256",
		doc: "Messages processed concurrently per worker process per role. " +
			"Provider calls mostly wait, so throughput is about this divided by send latency, until a provider rate-limits; " +
			"it also bounds the memory held by messages in progress and the work a SIGTERM has to drain. " +
			"Lower it when providers answer 429.",
		bind: integer(func(c *Config) *int { return &c.MaxInFlight }, 1, 100000),
	},
	{
		name: "HERALD_SEND_TIMEOUT", group: "Delivery", def: "15s",
		doc: "Deadline for one provider call: an SMTP transaction, a Twilio or an FCM request. " +
			"A call that times out is retried through the retry topic (not at once), but the provider may have delivered it anyway; " +
			"too short a deadline turns slow providers into duplicate messages that no idempotency key can see.",
		bind: duration(func(c *Config) *time.Duration { return &c.SendTimeout }, 100*time.Millisecond, 5*time.Minute, false),
	},
	{
		name: "HERALD_SHUTDOWN_TIMEOUT", group: "Delivery", def: "30s",
		doc: "Drain deadline on SIGTERM: messages in progress get this long to finish and have their offsets committed, " +
			"while the worker keeps its partitions and goes on heartbeating; " +
			"whatever is unfinished then is consumed again by the next owner. " +
			"Partitions revoked by a rebalance drain within a shorter deadline (`HERALD_REBALANCE_TIMEOUT`). " +
			"Must be greater than `HERALD_SEND_TIMEOUT` so a send started just before the signal can complete. " +
			"Kubernetes kills the pod after `terminationGracePeriodSeconds` (30s by default): set that a few seconds above this.",
		bind: duration(func(c *Config) *time.Duration { return &c.ShutdownTimeout }, time.Second, time.Hour, false),
		rule: func(c *Config) error {
			if c.ShutdownTimeout <= c.SendTimeout {
				return fmt.Errorf("%s must be greater than HERALD_SEND_TIMEOUT (%s)",
					fmtDuration(c.ShutdownTimeout), fmtDuration(c.SendTimeout))
			}
			return nil
		},
	},
	{
		name: "HERALD_RETRY_MAX_ATTEMPTS", group: "Delivery", def: "8",
		doc:  "Attempts at a notification, the first included, before a retryable failure is treated as permanent and the notification goes to `herald.dlq.v1`.",
		bind: integer(func(c *Config) *int { return &c.RetryMaxAttempts }, 1, 100),
	},
	{
		name: "HERALD_RETRY_MAX_AGE", group: "Delivery", def: "24h",
		doc: "Age, counted from the notification's creation, after which it is no longer retried and goes to `herald.dlq.v1`. " +
			"A class reminder is worthless after the class; this keeps a long provider outage from ending in a flood of stale messages.",
		bind: duration(func(c *Config) *time.Duration { return &c.RetryMaxAge }, time.Second, 8760*time.Hour, false),
	},

	// Idempotency.
	{
		name: "HERALD_REDIS_URL", group: "Idempotency",
		doc: "Redis holding idempotency keys, suppression lists and the rate budget: `redis://[user:password@]host:port/db`, `rediss://` for TLS, or `unix:///path/to/redis.sock`. " +
			"With `HERALD_REDIS_MODE=cluster` or `sentinel`, a comma-separated list of seed URLs (cluster nodes, or sentinels) that differ only in host and port. " +
			"Its `maxmemory-policy` must be `noeviction` (see `HERALD_REDIS_ALLOW_EVICTION`). " +
			"A secret because it may carry the password; prefer `HERALD_REDIS_URL_FILE`.",
		secret: true, redact: redactRedisURL,
		required: []Role{RoleDispatcher, RoleChannels, RoleGateway},
		bind:     text(func(c *Config) *string { return &c.RedisURL }, "redis://, rediss:// or unix:// URL(s)", redisURLs),
	},
	{
		name: "HERALD_REDIS_MODE", group: "Idempotency", def: "single",
		doc: "How Redis is deployed. `single`: one server (or a managed primary endpoint). " +
			"`cluster`: Redis Cluster; `HERALD_REDIS_URL` lists seed nodes and herald follows the slot map, redirections and failovers. " +
			"`sentinel`: a master found through Sentinel; `HERALD_REDIS_URL` lists the sentinels, `HERALD_REDIS_MASTER_NAME` names the master, and herald follows failovers; " +
			"the credentials and TLS settings are used with the sentinels as well as the master. " +
			"A `single` URL that reaches a cluster node or a sentinel stops the worker at start, naming the mode to set.",
		scope: []Role{RoleDispatcher, RoleChannels, RoleGateway},
		bind:  enum(func(c *Config) *RedisMode { return &c.RedisMode }, RedisSingle, RedisCluster, RedisSentinel),
		rule:  redisModeRule,
	},
	{
		name: "HERALD_REDIS_MASTER_NAME", group: "Idempotency",
		doc:   "The master's name in the sentinels' configuration (`sentinel monitor <name> ...`). Required with `HERALD_REDIS_MODE=sentinel`, and only then.",
		scope: []Role{RoleDispatcher, RoleChannels, RoleGateway},
		bind:  text(func(c *Config) *string { return &c.RedisMasterName }, "a Sentinel master name", nil),
		rule: func(c *Config) error {
			switch {
			case c.RedisMode == RedisSentinel && c.RedisMasterName == "":
				return fmt.Errorf("required with HERALD_REDIS_MODE=sentinel")
			case c.RedisMode != RedisSentinel && c.RedisMasterName != "":
				return fmt.Errorf("is set but HERALD_REDIS_MODE is %s, not sentinel", c.RedisMode)
			}
			return nil
		},
	},
	{
		name: "HERALD_REDIS_ALLOW_EVICTION", group: "Idempotency", def: "off",
		doc: "`off`: a channel worker refuses to start, with one line naming the policy, when Redis (any cluster master) has a `maxmemory-policy` other than `noeviction`. " +
			"An evicting Redis under memory pressure drops sent keys, so a repeated event is delivered again, and can drop a whole channel's suppression list, so herald texts people who said STOP. " +
			"A policy changed to an evicting one while the worker runs makes it unready (`/readyz`) until it is changed back. " +
			"`on` runs anyway (for a Redis whose losses you accept), logs a warning and sets `herald_redis_eviction_policy_unsafe` to 1 while a master evicts.",
		scope: []Role{RoleDispatcher, RoleChannels, RoleGateway},
		bind:  enum(func(c *Config) *Switch { return &c.RedisAllowEviction }, Off, On),
	},
	{
		name: "HERALD_IDEMPOTENCY_LEASE", group: "Idempotency", def: "45s",
		doc: "How long a worker's claim on a notification it is sending lasts. " +
			"If the worker dies mid-send, another may take the notification over only after the lease expires, so longer means slower recovery. " +
			"Must be greater than `HERALD_SEND_TIMEOUT`: a lease that can expire during a live send lets a second worker send the same message.",
		bind: duration(func(c *Config) *time.Duration { return &c.IdempotencyLease }, time.Second, time.Hour, false),
		rule: func(c *Config) error {
			if c.IdempotencyLease <= c.SendTimeout {
				return fmt.Errorf("%s must be greater than HERALD_SEND_TIMEOUT (%s)",
					fmtDuration(c.IdempotencyLease), fmtDuration(c.SendTimeout))
			}
			return nil
		},
	},
	{
		name: "HERALD_IDEMPOTENCY_RETENTION", group: "Idempotency", def: "168h",
		doc: "How long the key of a sent or permanently failed notification is kept. " +
			"A duplicate arriving within it (a replay, a redelivery, a late retry) is recognised and not sent; one arriving later is sent again. " +
			"Redis memory grows with notifications per retention window. " +
			"Must be at least `HERALD_RETRY_MAX_AGE`, so that no retry outlives the record that would stop it.",
		bind: duration(func(c *Config) *time.Duration { return &c.IdempotencyRetention }, time.Hour, 8760*time.Hour, false),
		rule: func(c *Config) error {
			if c.IdempotencyRetention < c.RetryMaxAge {
				return fmt.Errorf("%s must be at least HERALD_RETRY_MAX_AGE (%s)",
					fmtDuration(c.IdempotencyRetention), fmtDuration(c.RetryMaxAge))
			}
			return nil
		},
	},

	// Email, SMS and push: each channel declares its own variables in its
	// folder (channels/<name>, Descriptor.Settings). The SMS destination
	// policy is here, since the dispatcher reads it too.
	{
		name: "HERALD_SMS_ALLOWED_COUNTRIES", group: "SMS destinations",
		doc: "Destinations herald may text, as country calling codes or longer E.164 prefixes (`+44,+353,+1`); a number outside all of them is refused. " +
			"Unset allows every country, which suits a business whose members may live anywhere; set it to the countries you serve, " +
			"which caps what a forged or mistyped number can cost. " +
			"The dispatcher refuses such a number per recipient (the recipient's other channels and everyone else are still told), " +
			"as a permanent `destination_denied` outcome in the DLQ naming only the recipient id; the SMS worker refuses it again before calling Twilio.",
		scope: []Role{RoleDispatcher, RoleSMS},
		bind:  list(func(c *Config) *[]string { return &c.SMSAllowedCountries }, "+code,...", e164Prefix),
	},
	{
		name: "HERALD_SMS_DENIED_PREFIXES", group: "SMS destinations",
		def: strings.Join(address.DefaultDeniedPrefixes, ","),
		doc: "E.164 prefixes never texted, even in an allowed country, refused like `HERALD_SMS_ALLOWED_COUNTRIES`. " +
			"The default is premium-rate and mass-calling ranges (NANP +1900 and +1976, UK +449, Germany +49900 and +49137, France +3389, " +
			"Spain +34803, +34806, +34807 and +34905, Italy +39892 and +39899, Australia +61190) and the satellite and international networks " +
			"and premium services that SMS-pumping fraud uses (+870, +881, +882, +883, +979): no member's mobile is in them. " +
			"Setting the variable replaces the list (add to it by repeating the default); `none` denies nothing.",
		scope: []Role{RoleDispatcher, RoleSMS},
		bind:  list(func(c *Config) *[]string { return &c.SMSDeniedPrefixes }, "+prefix,... or none", e164PrefixOrNone),
		rule: func(c *Config) error {
			if len(c.SMSDeniedPrefixes) > 1 && slices.Contains(c.SMSDeniedPrefixes, "none") {
				return fmt.Errorf("none cannot be combined with prefixes")
			}
			return nil
		},
	},

	// Service.
	{
		name: "HERALD_HTTP_ADDR", group: "Service", def: ":9090",
		doc: "Listen address of `/metrics`, `/healthz` and `/readyz`. " +
			"Port 0 picks a free port, for tests.",
		bind: text(func(c *Config) *string { return &c.HTTPAddr }, "[host]:port", hostPort(false, 0)),
	},
	{
		name: "HERALD_PPROF", group: "Service", def: "off",
		doc: "`on` serves Go's runtime profiles under `/debug/pprof/` on `HERALD_HTTP_ADDR`, " +
			"for finding where a worker's CPU or memory goes during an incident " +
			"(`go tool pprof http://<pod>:9090/debug/pprof/profile?seconds=30`; docs/operations.md). " +
			"Off by default: a profile shows the process's internals and costs CPU while it is taken.",
		bind: enum(func(c *Config) *Switch { return &c.Profiling }, Off, On),
	},
	{
		name: "HERALD_LOG_LEVEL", group: "Service", def: "info",
		doc: "Least severe level logged. `debug` adds lines such as one per skipped event of an unknown type: " +
			"useful during an incident, noise in steady state.",
		bind: enum(func(c *Config) *LogLevel { return &c.LogLevel }, LogDebug, LogInfo, LogWarn, LogError),
	},
	{
		name: "HERALD_LOG_FORMAT", group: "Service", def: "json",
		doc:  "`json` for log collectors, `console` for reading in a terminal.",
		bind: enum(func(c *Config) *LogFormat { return &c.LogFormat }, LogJSON, LogConsole),
	},
	{
		name: "HERALD_TEMPLATES_DIR", group: "Service",
		doc: "Directory of templates, laid out like `templates/` in the repository, used instead of the templates herald ships with. " +
			"Must exist when set.",
		bind: text(func(c *Config) *string { return &c.TemplatesDir }, "a directory", directory),
	},
	{
		name: "HERALD_TEMPLATES_RELOAD_INTERVAL", group: "Service", def: "5s",
		doc: "How often herald reads `HERALD_TEMPLATES_DIR` for changes (a mounted ConfigMap updates in place). " +
			"A changed directory is validated in full, as `herald templates lint` does, before it replaces the running set; " +
			"an invalid change is refused with its problems logged, counted in `herald_templates_reloads_total{result=\"refused\"}`, " +
			"and the old set keeps serving. `0` turns hot reload off.",
		bind: duration(func(c *Config) *time.Duration { return &c.TemplatesReloadInterval }, 100*time.Millisecond, time.Hour, true),
	},

	// Measurement and tests.
	{
		name: "HERALD_IDEMPOTENCY", group: "Measurement and tests", def: "on",
		doc: "A measurement and test switch, never for production: `off` makes channel workers send without claiming idempotency keys, " +
			"so every message redelivered after a crash or a rebalance is sent again. " +
			"The chaos test (`make chaos`) runs the same kills both ways to show how many duplicates the keys prevent. " +
			"`HERALD_REDIS_URL` is still required and checked.",
		scope: []Role{RoleChannels},
		bind:  enum(func(c *Config) *IdempotencyMode { return &c.Idempotency }, IdempotencyOn, IdempotencyOff),
	},
}

// Connection security (Kafka SASL/TLS, Redis ACL/TLS): config/security.go.
func init() { registry = append(registry, securityVars...) }
