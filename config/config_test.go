package config_test

import (
	"bytes"
	"errors"
	"flag"
	"github.com/gymhq/herald/notification"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gymhq/herald/address"
	"github.com/gymhq/herald/config"
)

// env is a fake environment; its get method stands in for os.Getenv.
type env map[string]string

func (e env) get(k string) string { return e[k] }

// with returns a copy of e with kv (name, value pairs) applied; an empty value
// deletes.
func (e env) with(kv ...string) env {
	out := make(env, len(e)+len(kv)/2)
	for k, v := range e {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(out, kv[i])
		} else {
			out[kv[i]] = kv[i+1]
		}
	}
	return out
}

const fakeServiceAccount = `{
  "type": "service_account",
  "project_id": "gym-test",
  "private_key_id": "k1",
  "private_key": "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
  "client_email": "herald@gym-test.iam.gserviceaccount.com",
  "token_uri": "https://oauth2.googleapis.com/token"
}`

// writeFile writes content to a new file in t's temp dir and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// fullEnv is a valid environment for role all.
func fullEnv(t *testing.T) env {
	return env{
		"HERALD_KAFKA_BROKERS":        "kafka-0:9092, kafka-1:9092",
		"HERALD_REDIS_URL":            "redis://redis:6379/0",
		"HERALD_SMTP_ADDR":            "smtp.example.com:587",
		"HERALD_EMAIL_FROM":           "Gym <hello@example.com>",
		"HERALD_TWILIO_ACCOUNT_SID":   "AC0123456789abcdef0123456789abcdef",
		"HERALD_TWILIO_AUTH_TOKEN":    "tok",
		"HERALD_TWILIO_FROM":          "+15005550006",
		"HERALD_FCM_PROJECT_ID":       "gym-test",
		"HERALD_FCM_CREDENTIALS_FILE": writeFile(t, "sa.json", fakeServiceAccount),
		"HERALD_GATEWAY_JWT_SECRET":   "0123456789abcdef0123456789abcdef",
	}
}

// wantError checks that err is one line, an *config.Error about name, and
// contains want.
func wantError(t *testing.T, err error, name, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one about %s containing %q", name, want)
	}
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %q is %T, want *config.Error", err, err)
	}
	if ce.Var != name || !strings.HasPrefix(err.Error(), name) && !strings.Contains(err.Error(), name) {
		t.Errorf("error %q is about %s, want %s", err, ce.Var, name)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q is more than one line", err)
	}
}

func TestDefaults(t *testing.T) {
	c, err := config.Load([]string{"--role", "dispatcher"}, env{"HERALD_KAFKA_BROKERS": "localhost:9092", "HERALD_REDIS_URL": "redis://localhost:6379"}.get)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	want := &config.Config{
		Role:                 config.RoleDispatcher,
		KafkaBrokers:         []string{"localhost:9092"},
		EventsTopic:          "gym.bookings.v1",
		TopicPartitions:      12,
		TopicReplication:     -1,
		SessionTimeout:       10 * time.Second,
		RebalanceTimeout:     10 * time.Second,
		HeartbeatInterval:    time.Second,
		CommitInterval:       500 * time.Millisecond,
		InstanceID:           host,
		MaxInFlight:          256,
		SendTimeout:          15 * time.Second,
		ShutdownTimeout:      30 * time.Second,
		RetryMaxAttempts:     8,
		RetryMaxAge:          24 * time.Hour,
		IdempotencyLease:     45 * time.Second,
		IdempotencyRetention: 168 * time.Hour,
		RedisURL:             "redis://localhost:6379",
		RedisMode:            config.RedisSingle,
		RedisAllowEviction:   config.Off,
		Schedule:             config.Schedule{Retention: 720 * time.Hour, Tick: 100 * time.Millisecond, QuietHours: config.On},
		Security:             config.Security{KafkaSASLMechanism: config.KafkaSASLNone, KafkaTLS: config.Off},
		HTTPAddr:             ":9090",
		Profiling:            config.Off,
		LogLevel:             config.LogInfo,
		LogFormat:            config.LogJSON,
	}
	want.TemplatesReloadInterval = 5 * time.Second
	want.SMSDeniedPrefixes = address.DefaultDeniedPrefixes
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Load with defaults:\n got %+v\nwant %+v", c, want)
	}

	// Defaults fills in channel defaults too, since it is role all.
	d := config.Defaults()
	if d.Role != config.RoleAll || d.SMTPTLS != config.SMTPTLSMandatory || d.SMTPPoolSize != 4 ||
		d.TwilioAPIURL != "https://api.twilio.com" || d.FCMEndpoint != "https://fcm.googleapis.com" ||
		d.SMSValidityPeriod != 0 || d.SendTimeout != 15*time.Second || d.InstanceID != host {
		t.Errorf("Defaults() = %+v", d)
	}
}

func TestAllRole(t *testing.T) {
	c, err := config.Load(nil, fullEnv(t).get)
	if err != nil {
		t.Fatal(err)
	}
	if c.Role != config.RoleAll {
		t.Errorf("Role = %q, want all", c.Role)
	}
	if want := []string{"kafka-0:9092", "kafka-1:9092"}; !reflect.DeepEqual(c.KafkaBrokers, want) {
		t.Errorf("KafkaBrokers = %q, want %q", c.KafkaBrokers, want)
	}
	if c.EmailFrom != "Gym <hello@example.com>" || c.TwilioAuthToken != "tok" || c.SMTPTLS != config.SMTPTLSMandatory {
		t.Errorf("Load = %+v", c)
	}
	// Validate holds a loaded Config to the same rules.
	if err := c.Validate(); err != nil {
		t.Errorf("Validate() after Load = %v", err)
	}
}

func TestBadValues(t *testing.T) {
	tests := []struct {
		name, value, want string
	}{
		{"HERALD_KAFKA_BROKERS", "kafka-0", `"kafka-0" is not host:port: missing port in address`},
		{"HERALD_KAFKA_BROKERS", "kafka-0:http", `port "http" is not a number`},
		{"HERALD_KAFKA_BROKERS", ":9092", `has no host`},
		{"HERALD_KAFKA_BROKERS", "a:1,,b:2", `entry 2 of "a:1,,b:2" is empty`},
		{"HERALD_EVENTS_TOPIC", "gym bookings", `is not a valid Kafka name`},
		{"HERALD_TOPIC_PARTITIONS", "twelve", `"twelve" is not an integer`},
		{"HERALD_TOPIC_PARTITIONS", "0", `0 is out of range 1..10000`},
		{"HERALD_TOPIC_PARTITIONS", "10001", `10001 is out of range 1..10000`},
		{"HERALD_TOPIC_REPLICATION", "x", `"x" is not an integer`},
		{"HERALD_TOPIC_REPLICATION", "0", `0 is out of range -1 or 1..32`},
		{"HERALD_TOPIC_REPLICATION", "33", `33 is out of range -1 or 1..32`},
		{"HERALD_SESSION_TIMEOUT", "10", `"10" is not a duration`},
		{"HERALD_SESSION_TIMEOUT", "5s", `5s is out of range 6s..5m`},
		{"HERALD_SESSION_TIMEOUT", "6m", `6m is out of range 6s..5m`},
		{"HERALD_REBALANCE_TIMEOUT", "soon", `"soon" is not a duration`},
		{"HERALD_REBALANCE_TIMEOUT", "500ms", `500ms is out of range 1s..10m`},
		{"HERALD_HEARTBEAT_INTERVAL", "1", `"1" is not a duration`},
		{"HERALD_HEARTBEAT_INTERVAL", "10ms", `10ms is out of range 100ms..1m`},
		{"HERALD_HEARTBEAT_INTERVAL", "4s", `4s must be less than a third of HERALD_SESSION_TIMEOUT (10s)`},
		{"HERALD_COMMIT_INTERVAL", "fast", `"fast" is not a duration`},
		{"HERALD_COMMIT_INTERVAL", "1ms", `1ms is out of range 10ms..1m`},
		{"HERALD_COMMIT_INTERVAL", "2m", `2m is out of range 10ms..1m`},
		{"HERALD_INSTANCE_ID", "pod/1", `"pod/1" is not a valid Kafka name`},
		{"HERALD_MAX_IN_FLIGHT", "many", `"many" is not an integer`},
		{"HERALD_MAX_IN_FLIGHT", "0", `0 is out of range 1..100000`},
		{"HERALD_MAX_IN_FLIGHT", "100001", `100001 is out of range 1..100000`},
		{"HERALD_SEND_TIMEOUT", "15", `"15" is not a duration`},
		{"HERALD_SEND_TIMEOUT", "50ms", `50ms is out of range 100ms..5m`},
		{"HERALD_SEND_TIMEOUT", "6m", `6m is out of range 100ms..5m`},
		{"HERALD_SHUTDOWN_TIMEOUT", "x", `"x" is not a duration`},
		{"HERALD_SHUTDOWN_TIMEOUT", "2h", `2h is out of range 1s..1h`},
		{"HERALD_SHUTDOWN_TIMEOUT", "15s", `15s must be greater than HERALD_SEND_TIMEOUT (15s)`},
		{"HERALD_RETRY_MAX_ATTEMPTS", "1.5", `"1.5" is not an integer`},
		{"HERALD_RETRY_MAX_ATTEMPTS", "0", `0 is out of range 1..100`},
		{"HERALD_RETRY_MAX_ATTEMPTS", "101", `101 is out of range 1..100`},
		{"HERALD_RETRY_MAX_AGE", "1d", `"1d" is not a duration`},
		{"HERALD_RETRY_MAX_AGE", "0s", `0s is out of range 1s..8760h`},
		{"HERALD_REDIS_URL", "http://redis:6379", `scheme "http" is not redis, rediss or unix`},
		{"HERALD_REDIS_URL", "redis://", `has no host`},
		{"HERALD_REDIS_URL", "redis://redis:6379/zero", `database "zero" in the path is not a number`},
		{"HERALD_REDIS_URL", "unix://", `has no socket path`},
		{"HERALD_IDEMPOTENCY_LEASE", "45", `"45" is not a duration`},
		{"HERALD_IDEMPOTENCY_LEASE", "2h", `2h is out of range 1s..1h`},
		{"HERALD_IDEMPOTENCY_RETENTION", "week", `"week" is not a duration`},
		{"HERALD_IDEMPOTENCY_RETENTION", "30m", `30m is out of range 1h..8760h`},
		{"HERALD_IDEMPOTENCY_RETENTION", "9000h", `9000h is out of range 1h..8760h`},
		{"HERALD_IDEMPOTENCY_RETENTION", "12h", `12h must be at least HERALD_RETRY_MAX_AGE (24h)`},
		{"HERALD_SMTP_ADDR", "smtp.example.com", `is not host:port`},
		{"HERALD_SMTP_TLS", "maybe", `"maybe" is not one of mandatory, opportunistic, none`},
		{"HERALD_SMTP_TLS", "MANDATORY", `"MANDATORY" is not one of mandatory, opportunistic, none`},
		{"HERALD_EMAIL_FROM", "not an address", `"not an address" is not an email address`},
		{"HERALD_SMTP_POOL_SIZE", "four", `"four" is not an integer`},
		{"HERALD_SMTP_POOL_SIZE", "0", `0 is out of range 1..64`},
		{"HERALD_SMTP_POOL_SIZE", "65", `65 is out of range 1..64`},
		{"HERALD_TWILIO_ACCOUNT_SID", "SK123", `"SK123" is not a Twilio SID: want AC`},
		{"HERALD_TWILIO_ACCOUNT_SID", "AC", `"AC" is not a Twilio SID`},
		{"HERALD_TWILIO_MESSAGING_SERVICE_SID", "AC123", `"AC123" is not a Twilio SID: want MG followed by 32 hex digits`},
		{"HERALD_TWILIO_ACCOUNT_SID", "ACtest", `"ACtest" is not a Twilio SID: want AC followed by 32 hex digits`},
		{"HERALD_TWILIO_FROM", "555-1234", `"555-1234" is not an E.164 number`},
		{"HERALD_TWILIO_API_URL", "api.twilio.com", `"api.twilio.com" is not an absolute http(s) URL`},
		{"HERALD_TWILIO_API_URL", "ftp://api.twilio.com", `is not an absolute http(s) URL`},
		{"HERALD_SMS_VALIDITY_PERIOD", "4", `"4" is not a duration`},
		{"HERALD_SMS_VALIDITY_PERIOD", "500ms", `500ms is out of range 1s..10h`},
		{"HERALD_SMS_VALIDITY_PERIOD", "11h", `11h is out of range 1s..10h`},
		{"HERALD_SMS_VALIDITY_PERIOD", "1500ms", `1.5s is not a whole number of seconds`},
		{"HERALD_SMS_ALLOWED_COUNTRIES", "44", `"44" is not an E.164 prefix`},
		{"HERALD_SMS_ALLOWED_COUNTRIES", "+44,GB", `"GB" is not an E.164 prefix`},
		{"HERALD_SMS_ALLOWED_COUNTRIES", "+0", `"+0" is not an E.164 prefix`},
		{"HERALD_SMS_ALLOWED_COUNTRIES", "none", `"none" is not an E.164 prefix`},
		{"HERALD_SMS_DENIED_PREFIXES", "+1900,1976", `"1976" is not an E.164 prefix`},
		{"HERALD_SMS_DENIED_PREFIXES", "+1900,", `entry 2 of "+1900," is empty`},
		{"HERALD_SMS_DENIED_PREFIXES", "none,+1900", `none cannot be combined with prefixes`},
		{"HERALD_FCM_CREDENTIALS_FILE", "/nonexistent/sa.json", `open /nonexistent/sa.json: no such file or directory`},
		{"HERALD_FCM_PROJECT_ID", "p", `"p" is not a Google Cloud project ID (6 to 30 lowercase letters, digits and hyphens, starting with a letter)`},
		{"HERALD_FCM_ENDPOINT", "fcm.googleapis.com", `is not an absolute http(s) URL`},
		{"HERALD_HTTP_ADDR", "9090", `"9090" is not host:port`},
		{"HERALD_HTTP_ADDR", ":http", `port "http" is not a number in 0..65535`},
		{"HERALD_LOG_LEVEL", "trace", `"trace" is not one of debug, info, warn, error`},
		{"HERALD_LOG_FORMAT", "text", `"text" is not one of json, console`},
		{"HERALD_TEMPLATES_DIR", "/nonexistent/templates", `stat /nonexistent/templates: no such file or directory`},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			_, err := config.Load(nil, fullEnv(t).with(tt.name, tt.value).get)
			wantError(t, err, tt.name, tt.want)
		})
	}
}

func TestFCMCredentialsFile(t *testing.T) {
	tests := []struct {
		name, content, want string
	}{
		{"not json", "type: service_account", "is not JSON"},
		{"user credentials", `{"type":"authorized_user","client_id":"x"}`, `has type "authorized_user", want "service_account"`},
		{"no client_email", `{"type":"service_account","private_key":"k"}`, "has no client_email"},
		{"no private_key", `{"type":"service_account","client_email":"a@b"}`, "has no private_key"},
		{"bad token_uri", `{"type":"service_account","client_email":"a@b","private_key":"k","token_uri":"oauth2"}`, `token_uri "oauth2" is not an absolute http(s) URL`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, "sa.json", tt.content)
			_, err := config.Load([]string{"--role=push"}, fullEnv(t).with("HERALD_FCM_CREDENTIALS_FILE", p).get)
			wantError(t, err, "HERALD_FCM_CREDENTIALS_FILE", tt.want)
		})
	}
	t.Run("directory", func(t *testing.T) {
		_, err := config.Load([]string{"--role=push"}, fullEnv(t).with("HERALD_FCM_CREDENTIALS_FILE", t.TempDir()).get)
		wantError(t, err, "HERALD_FCM_CREDENTIALS_FILE", "is a directory")
	})
}

func TestRoleRequirements(t *testing.T) {
	brokers := env{"HERALD_KAFKA_BROKERS": "kafka:9092"}
	email := brokers.with(
		"HERALD_REDIS_URL", "redis://redis:6379",
		"HERALD_SMTP_ADDR", "smtp:587",
		"HERALD_EMAIL_FROM", "hello@example.com")
	sms := brokers.with(
		"HERALD_REDIS_URL", "redis://redis:6379",
		"HERALD_TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef",
		"HERALD_TWILIO_AUTH_TOKEN", "tok",
		"HERALD_TWILIO_FROM", "+15005550006")
	push := brokers.with(
		"HERALD_REDIS_URL", "redis://redis:6379",
		"HERALD_FCM_PROJECT_ID", "gym-test",
		"HERALD_FCM_CREDENTIALS_FILE", writeFile(t, "sa.json", fakeServiceAccount))
	gateway := brokers.with("HERALD_REDIS_URL", "redis://redis:6379", "HERALD_GATEWAY_JWT_SECRET", "0123456789abcdef0123456789abcdef")
	const key = "HERALD_GATEWAY_JWT_SECRET"

	tests := []struct {
		name    string
		role    string
		env     env
		wantErr string // exact; "" is success
	}{
		{"dispatcher needs brokers and redis", "dispatcher", brokers.with("HERALD_REDIS_URL", "redis://redis:6379"), ""},
		{"dispatcher without brokers", "dispatcher", env{"HERALD_REDIS_URL": "redis://redis:6379"}, "HERALD_KAFKA_BROKERS: required for role dispatcher"},
		{"dispatcher without redis", "dispatcher", brokers, "HERALD_REDIS_URL: required for role dispatcher"},
		// Channels the role does not run are neither read nor checked.
		{"dispatcher ignores channel settings", "dispatcher", brokers.with("HERALD_REDIS_URL", "redis://redis:6379",
			"HERALD_SMTP_TLS", "maybe",
			"HERALD_SMTP_PASSWORD_FILE", "/nonexistent/password",
			"HERALD_FCM_CREDENTIALS_FILE", "/nonexistent/sa.json"), ""},

		{"email", "email", email, ""},
		{"email without redis", "email", email.with("HERALD_REDIS_URL", ""), "HERALD_REDIS_URL: required for role email"},
		{"email without smtp addr", "email", email.with("HERALD_SMTP_ADDR", ""), "HERALD_SMTP_ADDR: required for role email"},
		{"email without from", "email", email.with("HERALD_EMAIL_FROM", ""), "HERALD_EMAIL_FROM: required for role email"},
		{"email ignores twilio", "email", email.with("HERALD_TWILIO_ACCOUNT_SID", "nope"), ""},

		{"sms", "sms", sms, ""},
		{"sms with messaging service only", "sms", sms.with("HERALD_TWILIO_FROM", "", "HERALD_TWILIO_MESSAGING_SERVICE_SID", "MG0123456789abcdef0123456789abcdef"), ""},
		{"sms without redis", "sms", sms.with("HERALD_REDIS_URL", ""), "HERALD_REDIS_URL: required for role sms"},
		{"sms without sid", "sms", sms.with("HERALD_TWILIO_ACCOUNT_SID", ""), "HERALD_TWILIO_ACCOUNT_SID: required for role sms"},
		{"sms without token", "sms", sms.with("HERALD_TWILIO_AUTH_TOKEN", ""), "HERALD_TWILIO_AUTH_TOKEN: required for role sms"},
		{"sms without sender", "sms", sms.with("HERALD_TWILIO_FROM", ""),
			"HERALD_TWILIO_MESSAGING_SERVICE_SID: required for role sms unless HERALD_TWILIO_FROM is set"},

		{"push", "push", push, ""},
		{"push without redis", "push", push.with("HERALD_REDIS_URL", ""), "HERALD_REDIS_URL: required for role push"},
		{"push without project", "push", push.with("HERALD_FCM_PROJECT_ID", ""), "HERALD_FCM_PROJECT_ID: required for role push"},
		{"push without credentials", "push", push.with("HERALD_FCM_CREDENTIALS_FILE", ""), "HERALD_FCM_CREDENTIALS_FILE: required for role push"},

		{"all", "all", email.with("HERALD_TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef", "HERALD_TWILIO_AUTH_TOKEN", "t", "HERALD_TWILIO_FROM", "+15005550006",
			"HERALD_FCM_PROJECT_ID", "gym-test", "HERALD_FCM_CREDENTIALS_FILE", push["HERALD_FCM_CREDENTIALS_FILE"], key, gateway[key]), ""},
		{"all without push", "all", email.with("HERALD_TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef", "HERALD_TWILIO_AUTH_TOKEN", "t", "HERALD_TWILIO_FROM", "+15005550006", key, gateway[key]),
			"HERALD_FCM_PROJECT_ID, HERALD_FCM_CREDENTIALS_FILE: required for role all"},
		{"all without smtp", "all", sms.with(key, gateway[key]), "HERALD_SMTP_ADDR, HERALD_EMAIL_FROM, HERALD_FCM_PROJECT_ID, HERALD_FCM_CREDENTIALS_FILE: required for role all"},

		{"unknown role", "cron", brokers, `--role: "cron" is not one of dispatcher, ` + notification.Names() + `, gateway, all`},

		{"gateway", "gateway", gateway, ""},
		{"gateway without a key", "gateway", gateway.with("HERALD_GATEWAY_JWT_SECRET", ""),
			"HERALD_GATEWAY_JWKS_FILE: required for role gateway unless HERALD_GATEWAY_JWT_SECRET is set"},
		{"gateway with both keys", "gateway", gateway.with("HERALD_GATEWAY_JWKS_FILE", writeFile(t, "jwks.json", `{"keys":[]}`)),
			"HERALD_GATEWAY_JWKS_FILE: is set and so is HERALD_GATEWAY_JWT_SECRET; set one"},
		{"gateway with a short key", "gateway", gateway.with("HERALD_GATEWAY_JWT_SECRET", "short"),
			"HERALD_GATEWAY_JWT_SECRET: is shorter than 32 bytes"},
		{"gateway without redis", "gateway", gateway.with("HERALD_REDIS_URL", ""), "HERALD_REDIS_URL: required for role gateway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Load([]string{"--role", tt.role}, tt.env.get)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if string(c.Role) != tt.role {
					t.Errorf("Role = %q, want %q", c.Role, tt.role)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("Load error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestFlagsOverrideEnv(t *testing.T) {
	e := fullEnv(t).with(
		"HERALD_SMTP_TLS", "none",
		"HERALD_MAX_IN_FLIGHT", "10",
		"HERALD_SMTP_PASSWORD_FILE", writeFile(t, "pw", "from-env-file\n"))
	c, err := config.Load([]string{
		"--smtp-tls", "opportunistic",
		"-max-in-flight=20",
		"--kafka-brokers=flag-kafka:9092",
		"--smtp-password", "from-flag",
		"--log-level", "debug",
	}, e.get)
	if err != nil {
		t.Fatal(err)
	}
	if c.SMTPTLS != config.SMTPTLSOpportunistic || c.MaxInFlight != 20 || c.SMTPPassword != "from-flag" || c.LogLevel != config.LogDebug {
		t.Errorf("flags did not win: %+v", c)
	}
	if !reflect.DeepEqual(c.KafkaBrokers, []string{"flag-kafka:9092"}) {
		t.Errorf("KafkaBrokers = %q, want the flag's", c.KafkaBrokers)
	}
	// A flag set to "" counts as not set, so the environment applies.
	c, err = config.Load([]string{"--smtp-tls="}, e.get)
	if err != nil {
		t.Fatal(err)
	}
	if c.SMTPTLS != config.SMTPTLSNone {
		t.Errorf("SMTPTLS = %q, want the environment's none", c.SMTPTLS)
	}
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pw := file("pw", "s3cret\n")
	crlf := file("crlf", "s3cret\r\n")
	inner := file("inner", "s3 cret \n")
	empty := file("empty", "\n")

	tests := []struct {
		name    string
		args    []string
		env     []string
		want    string // SMTPPassword
		wantErr string // exact
	}{
		{name: "trailing newline trimmed", env: []string{"HERALD_SMTP_PASSWORD_FILE", pw}, want: "s3cret"},
		{name: "trailing CRLF trimmed", env: []string{"HERALD_SMTP_PASSWORD_FILE", crlf}, want: "s3cret"},
		{name: "inner spaces kept", env: []string{"HERALD_SMTP_PASSWORD_FILE", inner}, want: "s3 cret "},
		{name: "plain value kept as is", env: []string{"HERALD_SMTP_PASSWORD", " p w "}, want: " p w "},
		{name: "flag file", args: []string{"--smtp-password-file", pw}, want: "s3cret"},
		{name: "flag file over env plain", args: []string{"--smtp-password-file", pw}, env: []string{"HERALD_SMTP_PASSWORD", "env"}, want: "s3cret"},
		{name: "flag plain over env file", args: []string{"--smtp-password", "flag"}, env: []string{"HERALD_SMTP_PASSWORD_FILE", pw}, want: "flag"},
		{name: "both in env", env: []string{"HERALD_SMTP_PASSWORD", "x", "HERALD_SMTP_PASSWORD_FILE", pw},
			wantErr: "HERALD_SMTP_PASSWORD and HERALD_SMTP_PASSWORD_FILE are both set; use one"},
		{name: "both as flags", args: []string{"--smtp-password=x", "--smtp-password-file=" + pw},
			wantErr: "--smtp-password and --smtp-password-file are both set; use one"},
		{name: "missing file", env: []string{"HERALD_SMTP_PASSWORD_FILE", "/x"},
			wantErr: "HERALD_SMTP_PASSWORD_FILE: open /x: no such file or directory"},
		{name: "missing file by flag", args: []string{"--smtp-password-file=/x"},
			wantErr: "--smtp-password-file: open /x: no such file or directory"},
		{name: "empty file", env: []string{"HERALD_SMTP_PASSWORD_FILE", empty},
			wantErr: "HERALD_SMTP_PASSWORD_FILE: " + empty + " is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Load(append([]string{"--role=email"}, tt.args...), fullEnv(t).with(tt.env...).get)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("Load error = %v, want %q", err, tt.wantErr)
				}
				var ce *config.Error
				if !errors.As(err, &ce) || ce.Var != "HERALD_SMTP_PASSWORD" {
					t.Errorf("error %#v is not about HERALD_SMTP_PASSWORD", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.SMTPPassword != tt.want {
				t.Errorf("SMTPPassword = %q, want %q", c.SMTPPassword, tt.want)
			}
		})
	}

	// Every secret has a file form.
	e := fullEnv(t).with(
		"HERALD_REDIS_URL", "", "HERALD_REDIS_URL_FILE", file("redis", "redis://:pw@redis:6379/1\n"),
		"HERALD_TWILIO_AUTH_TOKEN", "", "HERALD_TWILIO_AUTH_TOKEN_FILE", file("tok", "twilio-token\n"))
	c, err := config.Load(nil, e.get)
	if err != nil {
		t.Fatal(err)
	}
	if c.RedisURL != "redis://:pw@redis:6379/1" || c.TwilioAuthToken != "twilio-token" {
		t.Errorf("RedisURL = %q, TwilioAuthToken = %q", c.RedisURL, c.TwilioAuthToken)
	}
}

func TestTimingRules(t *testing.T) {
	tests := []struct {
		env     []string
		wantErr string
	}{
		{[]string{"HERALD_SEND_TIMEOUT", "15s", "HERALD_IDEMPOTENCY_LEASE", "15s"},
			"HERALD_IDEMPOTENCY_LEASE: 15s must be greater than HERALD_SEND_TIMEOUT (15s)"},
		{[]string{"HERALD_SEND_TIMEOUT", "50s", "HERALD_SHUTDOWN_TIMEOUT", "1m"},
			"HERALD_IDEMPOTENCY_LEASE: 45s must be greater than HERALD_SEND_TIMEOUT (50s)"},
		{[]string{"HERALD_SEND_TIMEOUT", "40s"},
			"HERALD_SHUTDOWN_TIMEOUT: 30s must be greater than HERALD_SEND_TIMEOUT (40s)"},
		{[]string{"HERALD_SESSION_TIMEOUT", "6s", "HERALD_HEARTBEAT_INTERVAL", "2s"},
			"HERALD_HEARTBEAT_INTERVAL: 2s must be less than a third of HERALD_SESSION_TIMEOUT (6s)"},
		{[]string{"HERALD_RETRY_MAX_AGE", "200h"},
			"HERALD_IDEMPOTENCY_RETENTION: 168h must be at least HERALD_RETRY_MAX_AGE (200h)"},
		{[]string{"HERALD_SEND_TIMEOUT", "50s", "HERALD_SHUTDOWN_TIMEOUT", "1m", "HERALD_IDEMPOTENCY_LEASE", "51s"}, ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.env, "="), func(t *testing.T) {
			_, err := config.Load(nil, fullEnv(t).with(tt.env...).get)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("Load error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestErrorOrder(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want string // variable named by the error
	}{
		{"two bad enums", []string{"HERALD_LOG_LEVEL", "loud", "HERALD_SMTP_TLS", "maybe"}, "HERALD_SMTP_TLS"},
		// A bad value found while parsing a later variable does not hide a
		// broken rule of an earlier one.
		{"earlier rule before later parse error", []string{"HERALD_KAFKA_BROKERS", "kafka", "HERALD_MAX_IN_FLIGHT", "many"}, "HERALD_KAFKA_BROKERS"},
		{"earlier parse error before later rule", []string{"HERALD_SESSION_TIMEOUT", "x", "HERALD_SMTP_TLS", "maybe"}, "HERALD_SESSION_TIMEOUT"},
		{"earlier secret file before later rule", []string{"HERALD_REDIS_URL_FILE", "/x", "HERALD_LOG_FORMAT", "xml"}, "HERALD_REDIS_URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 3 { // the same error every time
				_, err := config.Load(nil, fullEnv(t).with(tt.env...).get)
				var ce *config.Error
				if !errors.As(err, &ce) || ce.Var != tt.want {
					t.Fatalf("Load error = %v, want one about %s", err, tt.want)
				}
			}
		})
	}
}

// TestMissingAllAtOnce: a fresh deployment that lacks several required
// variables learns all of them from one start, on one line, and a malformed
// value on the same start is still named, with the missing ones after it.
func TestMissingAllAtOnce(t *testing.T) {
	allRequired := "HERALD_KAFKA_BROKERS, HERALD_REDIS_URL, HERALD_SMTP_ADDR, HERALD_EMAIL_FROM, " +
		"HERALD_TWILIO_ACCOUNT_SID, HERALD_TWILIO_AUTH_TOKEN, HERALD_TWILIO_MESSAGING_SERVICE_SID (or HERALD_TWILIO_FROM), " +
		"HERALD_FCM_PROJECT_ID, HERALD_FCM_CREDENTIALS_FILE, HERALD_GATEWAY_JWKS_FILE (or HERALD_GATEWAY_JWT_SECRET)"
	missingVars := "HERALD_KAFKA_BROKERS, HERALD_REDIS_URL, HERALD_SMTP_ADDR, HERALD_EMAIL_FROM, " +
		"HERALD_TWILIO_ACCOUNT_SID, HERALD_TWILIO_AUTH_TOKEN, HERALD_TWILIO_MESSAGING_SERVICE_SID, " +
		"HERALD_FCM_PROJECT_ID, HERALD_FCM_CREDENTIALS_FILE, HERALD_GATEWAY_JWKS_FILE"
	tests := []struct {
		name    string
		env     env
		wantVar string
		wantErr string // exact
	}{
		{"nothing set", env{}, "HERALD_KAFKA_BROKERS", allRequired + ": required for role all"},
		{"malformed and missing", env{"HERALD_SMTP_TLS": "maybe", "HERALD_KAFKA_BROKERS": "k:9092"}, "HERALD_SMTP_TLS",
			`HERALD_SMTP_TLS: "maybe" is not one of mandatory, opportunistic, none; ` +
				strings.TrimPrefix(allRequired, "HERALD_KAFKA_BROKERS, ") + ": required for role all"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load([]string{"--role", "all"}, tt.env.get)
			var ce *config.Error
			if !errors.As(err, &ce) || err.Error() != tt.wantErr || ce.Var != tt.wantVar {
				t.Fatalf("Load error = %v\nwant %q about %s", err, tt.wantErr, tt.wantVar)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
	// Validate, as herald dev and code-built configurations use it, names
	// them all too.
	c := config.Defaults()
	var ce *config.Error
	if err := c.Validate(); !errors.As(err, &ce) || strings.Join(ce.Missing, ", ") != missingVars {
		t.Errorf("Validate on defaults = %v, want all of %s", err, missingVars)
	}
}

func TestFlagErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--smtp-tsl=none"}, "-smtp-tsl"},
		{[]string{"--role"}, "-role"},
		{[]string{"--role", "email", "extra"}, `unexpected argument "extra"`},
		{[]string{"--herald-smtp-tls=none"}, "-herald-smtp-tls"},
	}
	for _, tt := range tests {
		_, err := config.Load(tt.args, fullEnv(t).get)
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Load(%q) error = %v, want one line containing %q", tt.args, err, tt.want)
		}
	}
}

func TestHelp(t *testing.T) {
	var b bytes.Buffer
	config.Usage(&b)
	usage := b.String()

	// Load prints the same text to standard error.
	stderr := os.Stderr
	t.Cleanup(func() { os.Stderr = stderr })
	for _, arg := range []string{"-h", "--help"} {
		f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
		if err != nil {
			t.Fatal(err)
		}
		os.Stderr = f
		_, err = config.Load([]string{arg}, env{}.get)
		os.Stderr = stderr
		f.Close()
		if !errors.Is(err, flag.ErrHelp) {
			t.Errorf("Load(%q) error = %v, want flag.ErrHelp", arg, err)
		}
		if printed, _ := os.ReadFile(f.Name()); string(printed) != usage {
			t.Errorf("Load(%q) printed %q, want Usage", arg, printed)
		}
	}
	for _, want := range []string{"--role", "--smtp-tls mandatory|opportunistic|none  (HERALD_SMTP_TLS)", "(default mandatory)",
		"--smtp-password-file, HERALD_SMTP_PASSWORD_FILE", "(default gym.bookings.v1)", "(default the host name)"} {
		if !strings.Contains(usage, want) {
			t.Errorf("usage does not contain %q:\n%s", want, usage)
		}
	}
	for _, name := range documentedVariables(t) {
		f := "--" + strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, "HERALD_")), "_", "-") + " "
		if !strings.Contains(usage, f) || !strings.Contains(usage, "("+name) {
			t.Errorf("usage does not list %s as %s", name, f)
		}
	}
}

// documentedVariables is every variable in the Markdown summary table.
func documentedVariables(t *testing.T) []string {
	t.Helper()
	names := regexp.MustCompile("(?m)^\\| \\[`(HERALD_[A-Z_]+)`\\]").FindAllStringSubmatch(config.Markdown(), -1)
	if len(names) < 30 {
		t.Fatalf("found %d variables in Markdown()", len(names))
	}
	out := make([]string, len(names))
	for i, m := range names {
		out[i] = m[1]
	}
	return out
}

func TestRedacted(t *testing.T) {
	e := fullEnv(t).with(
		"HERALD_REDIS_URL", "rediss://herald:red-pass@redis:6380/2",
		"HERALD_SMTP_USERNAME", "mailer",
		"HERALD_SMTP_PASSWORD", "smtp-pass",
		"HERALD_TWILIO_AUTH_TOKEN", "twilio-pass")
	c, err := config.Load(nil, e.get)
	if err != nil {
		t.Fatal(err)
	}
	r := c.Redacted()
	want := map[string]string{
		"role":                       "all",
		"HERALD_REDIS_URL":           "rediss://herald:***@redis:6380/2",
		"HERALD_SMTP_PASSWORD":       "***",
		"HERALD_TWILIO_AUTH_TOKEN":   "***",
		"HERALD_SMTP_USERNAME":       "mailer",
		"HERALD_KAFKA_BROKERS":       "kafka-0:9092,kafka-1:9092",
		"HERALD_SEND_TIMEOUT":        "15s",
		"HERALD_SMTP_TLS":            "mandatory",
		"HERALD_SMS_VALIDITY_PERIOD": "",
	}
	for k, v := range want {
		if got, ok := r[k]; !ok || got != v {
			t.Errorf("Redacted()[%s] = %q, want %q", k, got, v)
		}
	}
	for _, name := range documentedVariables(t) {
		if _, ok := r[name]; !ok {
			t.Errorf("Redacted() has no %s for role all", name)
		}
	}
	for k, v := range r {
		for _, secret := range []string{"red-pass", "smtp-pass", "twilio-pass"} {
			if strings.Contains(v, secret) {
				t.Errorf("Redacted()[%s] = %q shows a secret", k, v)
			}
		}
	}

	// Errors about a secret do not quote it.
	for _, u := range []string{"redis://:hunter2@redis:port/0", "http://:hunter2@redis", "redis://:hunter2@:6379", "redis://:hunter2@redis/db"} {
		_, err := config.Load(nil, fullEnv(t).with("HERALD_REDIS_URL", u).get)
		wantError(t, err, "HERALD_REDIS_URL", "")
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error %q shows the Redis password", err)
		}
	}

	// Redis URLs without a password are shown whole; unset secrets are empty.
	for _, tt := range []struct{ url, want string }{
		{"redis://redis:6379/0", "redis://redis:6379/0"},
		{"redis://:only-pass@redis:6379", "redis://:***@redis:6379"},
		{"unix:///var/run/redis.sock", "unix:///var/run/redis.sock"},
	} {
		c, err := config.Load(nil, fullEnv(t).with("HERALD_REDIS_URL", tt.url).get)
		if err != nil {
			t.Fatal(err)
		}
		r := c.Redacted()
		if r["HERALD_REDIS_URL"] != tt.want {
			t.Errorf("Redacted() Redis URL %q = %q, want %q", tt.url, r["HERALD_REDIS_URL"], tt.want)
		}
		if r["HERALD_SMTP_PASSWORD"] != "" {
			t.Errorf("unset SMTP password shown as %q", r["HERALD_SMTP_PASSWORD"])
		}
	}

	// A role lists only what it reads.
	c, err = config.Load([]string{"--role=dispatcher"}, env{"HERALD_KAFKA_BROKERS": "k:1", "HERALD_REDIS_URL": "redis://r:6379"}.get)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Redacted()["HERALD_SMTP_PASSWORD"]; ok {
		t.Error("dispatcher's Redacted() lists HERALD_SMTP_PASSWORD")
	}
}

func TestValidateBuiltInCode(t *testing.T) {
	c := config.Defaults()
	c.Role = config.RoleDispatcher
	c.KafkaBrokers = []string{"localhost:9092"}
	c.RedisURL = "redis://localhost:6379"
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	c.SendTimeout = 0
	wantError(t, c.Validate(), "HERALD_SEND_TIMEOUT", "0s is out of range 100ms..5m")

	c = config.Defaults()
	c.Role = config.RoleDispatcher
	c.KafkaBrokers = []string{"localhost:9092"}
	c.LogFormat = ""
	wantError(t, c.Validate(), "HERALD_LOG_FORMAT", `"" is not one of json, console`)

	c = config.Defaults()
	c.Role = ""
	wantError(t, c.Validate(), "--role", `"" is not one of`)
}

func TestRoleRuns(t *testing.T) {
	if !config.RoleAll.Runs(config.RoleSMS) || !config.RoleSMS.Runs(config.RoleSMS) || config.RoleEmail.Runs(config.RoleSMS) {
		t.Error("Runs is wrong")
	}
}

func TestSMSPolicy(t *testing.T) {
	tests := []struct {
		name            string
		allowed, denied string
		permit, refuse  []string
	}{
		{"defaults", "", "", []string{"+447700900123", "+15005550006", "+34611222333"}, []string{"+19005550100", "+449091234567", "+8816212345678"}},
		{"allowed countries", "+44,+353", "", []string{"+447700900123", "+353851234567"}, []string{"+15005550006", "+449091234567"}},
		{"none denied", "", "none", []string{"+19005550100", "+449091234567"}, nil},
		{"own deny list", "", "+1555", []string{"+19005550100"}, []string{"+15555550100"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Load([]string{"--role", "dispatcher"}, env{"HERALD_KAFKA_BROKERS": "localhost:9092", "HERALD_REDIS_URL": "redis://localhost:6379",
				"HERALD_SMS_ALLOWED_COUNTRIES": tt.allowed, "HERALD_SMS_DENIED_PREFIXES": tt.denied}.get)
			if err != nil {
				t.Fatal(err)
			}
			p := c.SMSPolicy()
			for _, n := range tt.permit {
				if err := p.Permit(n); err != nil {
					t.Errorf("Permit(%s) = %v, want nil", n, err)
				}
			}
			for _, n := range tt.refuse {
				if err := p.Permit(n); err == nil {
					t.Errorf("Permit(%s) = nil, want a refusal", n)
				}
			}
		})
	}
}

// TestUnknown: a misspelt variable is named (outside tester:
// HERALD_KAFKA_BROKER=typo started as if unset); real ones and _FILE forms
// of secrets are not.
func TestUnknown(t *testing.T) {
	env := []string{"PATH=/bin", "HERALD_KAFKA_BROKERS=k:9092", "HERALD_KAFKA_BROKER=typo",
		"HERALD_TWILIO_AUTH_TOKEN_FILE=/run/secrets/t", "HERALD_SMTP_ADDR_FILE=/x", "HERALD_LOG_LEVEL=info"}
	got := config.Unknown(env)
	if strings.Join(got, ",") != "HERALD_KAFKA_BROKER,HERALD_SMTP_ADDR_FILE" {
		t.Errorf("Unknown = %v, want the typo and the _FILE form of a variable that is not a secret", got)
	}
}
