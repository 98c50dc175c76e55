// Package config is herald's start-up configuration: what a worker reads from
// its environment and flags, checked once, before anything connects anywhere.
//
// Every variable is one entry in the registry: the table in registry.go,
// and the settings each channel declares in its own folder (Setting, added
// by channels.Register). The environment reader, the flags, the _FILE forms
// of secrets, validation, the redacted start-up log line, -h and
// docs/configuration.md are all derived from it, so they cannot drift
// apart; adding a variable is adding an entry (and, for one the tree reads
// as a field, a field to Config).
//
// Loading reads files only to check them (secret _FILE forms, the FCM
// credentials, the templates directory) and never dials Kafka, Redis or a
// provider: reachability is a readiness question, answered by /readyz, not a
// configuration one. A Config is never half valid: Load returns either a
// Config that passed Validate or one error line that names the variable.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/gymhq/herald/address"
	"github.com/gymhq/herald/notification"
)

// Role is the part of the pipeline a worker process runs. One image serves
// every Deployment; the role flag picks the work.
type Role string

const (
	// RoleDispatcher consumes booking events and fans them out onto the
	// channel topics.
	RoleDispatcher Role = "dispatcher"
	// RoleEmail, RoleSMS and RolePush consume one channel topic each and
	// deliver through that channel's provider.
	RoleEmail Role = Role(notification.Email)
	RoleSMS   Role = Role(notification.SMS)
	RolePush  Role = Role(notification.Push)
	// RoleGateway serves people's in-app feeds over HTTP (Server-Sent
	// Events, WebSocket) behind a plain load balancer; it consumes no
	// topic.
	RoleGateway Role = "gateway"
	// RoleAll runs every role in one process: small installations and
	// local development.
	RoleAll Role = "all"
)

// RoleChannels, in a variable's scope or required list, stands for the
// role of every channel (each registered channel is a role of its own; see
// package channels); it is never a role a process runs.
const RoleChannels Role = "<every channel>"

// roles is every Role in the order errors and help list them: the
// dispatcher, each registered channel, and all.
func roles() []Role {
	out := []Role{RoleDispatcher}
	for _, ch := range notification.Known() {
		out = append(out, Role(ch))
	}
	return append(out, RoleGateway, RoleAll)
}

// expand replaces RoleChannels in rs by the registered channels' roles.
func expand(rs []Role) []Role {
	var out []Role
	for _, r := range rs {
		if r != RoleChannels {
			out = append(out, r)
			continue
		}
		for _, ch := range notification.Known() {
			out = append(out, Role(ch))
		}
	}
	return out
}

// Runs reports whether a worker started with role r does the work of role w:
// a role runs itself, and RoleAll runs everything.
func (r Role) Runs(w Role) bool { return r == w || r == RoleAll }

func (r Role) valid() bool {
	for _, x := range roles() {
		if r == x {
			return true
		}
	}
	return false
}

// SMTPTLS is how the email channel protects its SMTP connection.
type SMTPTLS string

const (
	// SMTPTLSMandatory requires STARTTLS; a server that does not offer it
	// gets no mail and no credentials.
	SMTPTLSMandatory SMTPTLS = "mandatory"
	// SMTPTLSOpportunistic uses STARTTLS when the server offers it and
	// plaintext otherwise.
	SMTPTLSOpportunistic SMTPTLS = "opportunistic"
	// SMTPTLSNone never uses TLS: local relays and test sinks only.
	SMTPTLSNone SMTPTLS = "none"
)

// LogLevel is the least severe level that is logged.
type LogLevel string

const (
	LogDebug LogLevel = "debug"
	LogInfo  LogLevel = "info"
	LogWarn  LogLevel = "warn"
	LogError LogLevel = "error"
)

// LogFormat is how log lines are written.
type LogFormat string

const (
	// LogJSON is one JSON object per line, for log collectors.
	LogJSON LogFormat = "json"
	// LogConsole is human-readable, for a terminal.
	LogConsole LogFormat = "console"
)

// Config is a worker's configuration. Each field is one variable; its
// operator-facing meaning, default and limits are in docs/configuration.md
// (generated from registry.go). The comments here state what code using the
// field may rely on once Validate has passed.
//
// Fields of a channel the Role does not run (SMTP for RoleSMS, say) are left
// at their zero values and are not checked.
type Config struct {
	// Role is the work this process does; only a flag (--role), never an
	// environment variable, so one ConfigMap serves every Deployment.
	Role Role

	// declared holds the settings channels declare in their own folders
	// (Declare), read with Value, Bool and Duration.
	declared map[string]string

	// KafkaBrokers are seed brokers as host:port, at least one.
	KafkaBrokers []string
	// EventsTopic is the booking events topic the dispatcher reads. herald
	// never creates or alters it.
	EventsTopic string
	// TopicPartitions and TopicReplication apply only when herald creates a
	// missing herald.* topic. TopicReplication -1 means the broker's
	// default.replication.factor.
	TopicPartitions  int
	TopicReplication int
	// SessionTimeout, RebalanceTimeout and HeartbeatInterval are the
	// consumer group timings; HeartbeatInterval < SessionTimeout/3.
	SessionTimeout    time.Duration
	RebalanceTimeout  time.Duration
	HeartbeatInterval time.Duration
	// CommitInterval is how often marked offsets are committed.
	CommitInterval time.Duration
	// InstanceID is unique per process: the Kafka client id and the prefix
	// of idempotency lease owners. Only [A-Za-z0-9._-].
	InstanceID string

	// MaxInFlight bounds messages processed concurrently per process per
	// role.
	MaxInFlight int
	// SendTimeout is the deadline for one provider call.
	SendTimeout time.Duration
	// ShutdownTimeout is the drain deadline on SIGTERM or revoke; greater
	// than SendTimeout.
	ShutdownTimeout time.Duration
	// RetryMaxAttempts and RetryMaxAge end the retry ladder: whichever is
	// reached first sends the notification to the DLQ.
	RetryMaxAttempts int
	RetryMaxAge      time.Duration

	// RedisURL is the idempotency store, redis://, rediss:// or unix://;
	// in cluster and sentinel mode a comma-separated list of seeds that
	// differ only in host and port. It may carry a password: log
	// Redacted, never this.
	RedisURL string
	// RedisMode is how Redis is deployed: one server, a Cluster, or a
	// master found through Sentinel (RedisMasterName).
	RedisMode       RedisMode
	RedisMasterName string
	// RedisAllowEviction lets workers run on a Redis whose
	// maxmemory-policy evicts keys, which they otherwise refuse.
	RedisAllowEviction Switch
	// IdempotencyLease is how long a claim on an in-flight notification
	// lasts; greater than SendTimeout.
	IdempotencyLease time.Duration
	// IdempotencyRetention is how long a sent or failed key is kept; at
	// least RetryMaxAge.
	IdempotencyRetention time.Duration
	// Security: Kafka SASL/TLS and Redis ACL/TLS (config/security.go).
	Security

	// SMTPAddr is the submission server as host:port, or several
	// "host:port[*weight]" relays, comma-separated (ParseWeighted).
	SMTPAddr string
	// SMTPUsername empty means no SMTP authentication.
	SMTPUsername string
	SMTPPassword string
	SMTPTLS      SMTPTLS
	// EmailFrom is an RFC 5322 address, display name allowed; it parses
	// with net/mail.ParseAddress.
	EmailFrom string
	// SMTPPoolSize is the number of SMTP connections per process.
	SMTPPoolSize int

	// TwilioAccountSID starts with "AC". At least one of TwilioFrom and
	// TwilioMessagingServiceSID (starting with "MG") is set.
	TwilioAccountSID          string
	TwilioAuthToken           string
	TwilioFrom                string
	TwilioMessagingServiceSID string
	// TwilioAPIURL is an absolute http(s) URL without the API version path.
	TwilioAPIURL string
	// SMSValidityPeriod is Twilio's ValidityPeriod in whole seconds; zero
	// means leave Twilio's default.
	SMSValidityPeriod time.Duration
	// SMSAllowedCountries and SMSDeniedPrefixes are E.164 prefixes
	// ("+44"): the destinations herald may text, all when empty, and those
	// it never texts; SMSDeniedPrefixes may be the one word "none". Use
	// SMSPolicy rather than reading them.
	SMSAllowedCountries []string
	SMSDeniedPrefixes   []string

	// FCMProjectID and FCMCredentialsFile select the Firebase project and
	// the service-account JSON used to get OAuth2 tokens for it. The file
	// was readable and of type "service_account" when validated; read it
	// again at start, Config does not keep its contents.
	FCMProjectID       string
	FCMCredentialsFile string
	// FCMEndpoint is an absolute http(s) URL without the /v1 path.
	FCMEndpoint string

	// HTTPAddr is where /metrics, /healthz and /readyz listen; port 0 picks
	// a free port.
	HTTPAddr string
	// Profiling, when On, serves Go's runtime profiles (net/http/pprof)
	// under /debug/pprof/ on HTTPAddr.
	Profiling Switch
	// Gateway is the gateway role's settings (config/gateway.go).
	Gateway   Gateway
	LogLevel  LogLevel
	LogFormat LogFormat
	// TemplatesDir is an existing directory, or empty for the templates
	// built into herald.
	TemplatesDir string
	// TemplatesReloadInterval is how often TemplatesDir is read for
	// changes; 0 turns hot reload off.
	TemplatesReloadInterval time.Duration

	// Provider protection (protect.go). EmailRate, SMSRate and PushRate
	// are fleet-wide sends per second, 0 unlimited. BreakerFailures (>= 1)
	// consecutive retryable failures open a channel's breaker for
	// BreakerOpenFor.
	EmailRate, SMSRate, PushRate int
	BreakerFailures              int
	BreakerOpenFor               time.Duration

	// Schedule is the scheduler's settings (config/schedule.go).
	Schedule Schedule
	// Idempotency is on in production; off is a measurement and test switch.
	Idempotency IdempotencyMode
}

// Error is one configuration problem, worded for the operator who has to fix
// it. Var is the variable it is about (HERALD_…, or "--role"); when a rule
// involves two variables Var is the later one in registry order and the text
// names both.
type Error struct {
	Var string
	// Missing lists every required variable that is not set, in registry
	// order, when that is (part of) the problem; Var is then its first.
	Missing []string
	msg     string
}

// Error is one line, whatever the offending value held: line breaks from
// a value quoted in the text (a path, a URL) are escaped, so a start-up
// error never spans lines in a log.
func (e *Error) Error() string { return oneLine.Replace(e.msg) }

var oneLine = strings.NewReplacer("\r\n", `\r\n`, "\n", `\n`, "\r", `\r`)

// errorf returns an *Error about name whose text starts with "name: ".
func errorf(name, format string, args ...any) *Error {
	return &Error{Var: name, msg: name + ": " + fmt.Sprintf(format, args...)}
}

// Defaults returns a Config holding every default, with RoleAll and
// InstanceID set to the host name. The required variables are empty, so it
// does not pass Validate until they are filled in; it is meant for herald dev
// and tests that build their configuration in code.
func Defaults() *Config {
	c := &Config{Role: RoleAll}
	for _, v := range registry {
		raw, err := v.defaultValue()
		if err == nil {
			err = v.bind.parse(c, raw)
		}
		if err != nil {
			panic(fmt.Sprintf("config: default of %s: %v", v.name, err))
		}
	}
	return c
}

// Load builds the Config for one worker process.
//
// Each variable comes from, in order of precedence: its flag (--smtp-tls),
// its environment variable (HERALD_SMTP_TLS) looked up with getenv, its
// default. A secret's _FILE form (--smtp-password-file,
// HERALD_SMTP_PASSWORD_FILE) stands in for its plain form at the same level;
// setting both forms at one level is an error. An empty value counts as not
// set. --role is only a flag and defaults to all. Variables of channels the
// role does not run are not read at all, so a secret file need only be
// mounted where it is used.
//
// The result has passed Validate. Otherwise the error is one line (an
// *Error): the first malformed value or broken rule in registry order, naming
// its variable, followed by every required variable that is not set, all of
// them at once, so an operator fixes a fresh deployment in one round rather
// than one variable per restart. Or it is the flag package's error for an
// unknown or malformed flag. -h and --help print Usage to standard error and
// return flag.ErrHelp.
func Load(args []string, getenv func(string) string) (*Config, error) {
	fs := flag.NewFlagSet("herald", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	role := fs.String("role", string(RoleAll), "")
	for _, v := range registry {
		fs.String(v.flag(), "", flagUsage(v))
		if v.secret {
			fs.String(v.flag()+"-file", "", flagUsage(v))
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			Usage(os.Stderr)
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q: configuration is flags and HERALD_* variables only", fs.Arg(0))
	}
	flags := make(map[string]string)
	fs.Visit(func(f *flag.Flag) { flags[f.Name] = f.Value.String() })

	c := &Config{Role: Role(strings.TrimSpace(*role))}
	if err := c.checkRole(); err != nil {
		return nil, err
	}
	var first *Error         // the first malformed value, or a rule broken before it
	bad := map[string]bool{} // variables whose value did not parse
	for i, v := range registry {
		if !v.usedBy(c.Role) {
			continue
		}
		raw, err := v.lookup(flags, getenv)
		if err == nil {
			if perr := v.bind.parse(c, raw); perr != nil {
				err = errorf(v.name, "%v", perr)
			}
		}
		if err == nil {
			continue
		}
		bad[v.name] = true
		if first == nil {
			// Report in registry order: a rule broken by an earlier,
			// already parsed variable comes before this one.
			first = c.check(registry[:i])
			if first == nil {
				first = asError(v.name, err)
			}
		}
	}
	if first != nil {
		// Parsing went on past the malformed value so that the missing
		// variables can be named on the same line.
		return nil, joinErrors(first, c.missing(registry, bad))
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// asError is err as an *Error about name (lookup and parse errors already
// are one).
func asError(name string, err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return errorf(name, "%v", err)
}

// Validate checks c as Load does, for the variables its Role uses: required
// variables are set, every value is in range, and the rules between variables
// hold. It reads the FCM credentials file and stats the templates directory.
// The error is one line, an *Error: the first bad value or broken rule in
// registry order, then every required variable that is not set.
func (c *Config) Validate() error {
	if err := c.checkRole(); err != nil {
		return err
	}
	if e := joinErrors(c.check(registry), c.missing(registry, nil)); e != nil {
		return e
	}
	return nil
}

// joinErrors puts a bad value and the missing variables on one line, about
// the bad value's variable. Either may be nil.
func joinErrors(bad, missing *Error) *Error {
	switch {
	case bad == nil:
		return missing
	case missing == nil:
		return bad
	}
	return &Error{Var: bad.Var, Missing: missing.Missing, msg: bad.msg + "; " + missing.msg}
}

// check runs the value checks and rules of vars that c.Role uses, and
// returns the first failure.
func (c *Config) check(vars []*variable) *Error {
	for _, v := range vars {
		if err := v.check(c); err != nil {
			return err
		}
	}
	return nil
}

// missing names, in registry order, every variable of vars that c.Role
// requires and that is not set, except those in skip: "A: required for role
// all", or "A, B, C: required for role all". Nil when none is missing.
// A variable that is required unless another is set is named with the
// other: "A (or B)".
func (c *Config) missing(vars []*variable, skip map[string]bool) *Error {
	var names, shown []string
	unless := ""
	for _, v := range vars {
		if !v.usedBy(c.Role) || skip[v.name] {
			continue
		}
		if v.requiredBy(c.Role) && !v.bind.isSet(c) {
			names, shown = append(names, v.name), append(shown, v.name)
			continue
		}
		if v.rule == nil {
			continue
		}
		var ru requiredUnless
		if errors.As(v.rule(c), &ru) {
			names, shown, unless = append(names, v.name), append(shown, v.name+" (or "+string(ru)+")"), string(ru)
		}
	}
	switch {
	case len(names) == 0:
		return nil
	case len(names) == 1 && unless != "":
		return &Error{Var: names[0], Missing: names, msg: fmt.Sprintf("%s: required for role %s unless %s is set", names[0], c.Role, unless)}
	}
	return &Error{Var: names[0], Missing: names, msg: fmt.Sprintf("%s: required for role %s", strings.Join(shown, ", "), c.Role)}
}

// requiredUnless is a rule's answer when neither its variable nor the one
// it names is set: the pair is reported with the missing variables.
type requiredUnless string

func (r requiredUnless) Error() string { return "required unless " + string(r) + " is set" }

func (c *Config) checkRole() error {
	if c.Role.valid() {
		return nil
	}
	return errorf("--role", "%q is not one of %s", c.Role, joinRoles(roles(), ", "))
}

// Redacted returns the configuration for one start-up log line: variable
// name → value, plus "role", for the variables the Role uses. Set secrets are
// "***"; the Redis URL keeps everything but its password, so an operator can
// still see which Redis a worker talks to.
func (c *Config) Redacted() map[string]string {
	m := map[string]string{"role": string(c.Role)}
	for _, v := range registry {
		if !v.usedBy(c.Role) {
			continue
		}
		s := v.bind.format(c)
		if v.secret && s != "" {
			if v.redact != nil {
				s = v.redact(s)
			} else {
				s = "***"
			}
		}
		m[v.name] = s
	}
	return m
}

// SMSPolicy is the SMS destination policy the configuration describes.
func (c *Config) SMSPolicy() *address.SMSPolicy {
	p := &address.SMSPolicy{Allowed: slices.Clone(c.SMSAllowedCountries)}
	for _, d := range c.SMSDeniedPrefixes {
		if d != "none" {
			p.Denied = append(p.Denied, d)
		}
	}
	return p
}

// Unknown returns the HERALD_* names in environ ("NAME=value" entries, as
// os.Environ gives them) that no variable of the registry reads, in the
// order given: most often a typo (HERALD_KAFKA_BROKER) whose setting
// silently does nothing. herald run warns of them at start.
func Unknown(environ []string) []string {
	known := map[string]bool{}
	for _, v := range registry {
		known[v.name] = true
		if v.secret {
			known[v.name+"_FILE"] = true
		}
	}
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "HERALD_") && !known[name] {
			out = append(out, name)
		}
	}
	return out
}
