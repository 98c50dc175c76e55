package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
)

// Security is how workers authenticate to Kafka and Redis and protect those
// connections. It is embedded in Config; its variables are the "Kafka
// security" and "Redis security" groups of the registry.
type Security struct {
	// KafkaSASLMechanism is none, PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512;
	// with a mechanism, KafkaSASLUsername and KafkaSASLPassword are set.
	KafkaSASLMechanism KafkaSASL
	KafkaSASLUsername  string
	KafkaSASLPassword  string
	// KafkaTLS turns TLS on for every Kafka connection. The CA, client
	// certificate and server name are only set with it on; the files were
	// readable PEM (and the pair matched) when validated.
	KafkaTLS           Switch
	KafkaTLSCAFile     string
	KafkaTLSCertFile   string
	KafkaTLSKeyFile    string
	KafkaTLSServerName string

	// RedisUsername and RedisPassword are the Redis ACL user, instead of
	// the URL's user info (which must then carry none).
	RedisUsername string
	RedisPassword string
	// RedisTLSCAFile, RedisTLSCertFile and RedisTLSKeyFile are only set
	// with a rediss:// URL.
	RedisTLSCAFile   string
	RedisTLSCertFile string
	RedisTLSKeyFile  string
}

// KafkaSASL is a SASL mechanism, or none.
type KafkaSASL string

const (
	KafkaSASLNone        KafkaSASL = "none"
	KafkaSASLPlain       KafkaSASL = "PLAIN"
	KafkaSASLScramSHA256 KafkaSASL = "SCRAM-SHA-256"
	KafkaSASLScramSHA512 KafkaSASL = "SCRAM-SHA-512"
)

// Switch is on or off.
type Switch string

const (
	On  Switch = "on"
	Off Switch = "off"
)

// pemCAFile checks a readable PEM bundle with at least one certificate.
func pemCAFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		return fmt.Errorf("%s holds no PEM certificate", path)
	}
	return nil
}

// keyPairRule checks that a client certificate and key are set together
// and load as a pair; cert and key are the variable names.
func keyPairRule(certName string, cert, key func(*Config) string) func(*Config) error {
	return func(c *Config) error {
		switch {
		case cert(c) == "" && key(c) == "":
			return nil
		case cert(c) == "" || key(c) == "":
			return fmt.Errorf("must be set together with %s", certName)
		}
		if _, err := tls.LoadX509KeyPair(cert(c), key(c)); err != nil {
			return fmt.Errorf("does not load as a pair with %s: %v", certName, err)
		}
		return nil
	}
}

// redisURLHasPassword reports whether the Redis URL carries a password.
// A list of seed URLs has a password if any of them has.
func redisURLHasPassword(s string) bool {
	for _, raw := range splitURLs(s) {
		u, err := url.Parse(raw)
		if err != nil || u.User == nil {
			continue
		}
		if _, ok := u.User.Password(); ok {
			return true
		}
	}
	return false
}

// redisScheme is the scheme of the (first) Redis URL; HERALD_REDIS_MODE's
// rule makes every seed use the same one.
func redisScheme(s string) string {
	u, err := url.Parse(splitURLs(s)[0])
	if err != nil {
		return ""
	}
	return u.Scheme
}

// securityVars are the Kafka and Redis security variables, appended to the
// registry.
var securityVars = []*variable{
	{
		name: "HERALD_KAFKA_SASL_MECHANISM", group: "Kafka security", def: "none",
		doc: "SASL authentication to the brokers, for every Kafka connection (consumers, producer, topic creation). " +
			"The SCRAM mechanisms never send the password; `PLAIN` sends it as is, so use it only with `HERALD_KAFKA_TLS=on`. " +
			"Managed clusters usually want `PLAIN` (Confluent Cloud) or `SCRAM-SHA-512` (MSK, Aiven) over TLS. " +
			"A refused login stops the worker at start with one line.",
		bind: enum(func(c *Config) *KafkaSASL { return &c.KafkaSASLMechanism }, KafkaSASLNone, KafkaSASLPlain, KafkaSASLScramSHA256, KafkaSASLScramSHA512),
	},
	{
		name: "HERALD_KAFKA_SASL_USERNAME", group: "Kafka security",
		doc:  "SASL user name (an API key on Confluent Cloud). Required with a SASL mechanism.",
		bind: text(func(c *Config) *string { return &c.KafkaSASLUsername }, "", nil),
		rule: func(c *Config) error {
			switch {
			case c.KafkaSASLMechanism != KafkaSASLNone && c.KafkaSASLUsername == "":
				return fmt.Errorf("required with HERALD_KAFKA_SASL_MECHANISM=%s", c.KafkaSASLMechanism)
			case c.KafkaSASLMechanism == KafkaSASLNone && c.KafkaSASLUsername != "":
				return fmt.Errorf("is set but HERALD_KAFKA_SASL_MECHANISM is none")
			}
			return nil
		},
	},
	{
		name: "HERALD_KAFKA_SASL_PASSWORD", group: "Kafka security",
		doc:    "SASL password (an API secret on Confluent Cloud); prefer `HERALD_KAFKA_SASL_PASSWORD_FILE`. Required with a SASL mechanism.",
		secret: true,
		bind:   text(func(c *Config) *string { return &c.KafkaSASLPassword }, "", nil),
		rule: func(c *Config) error {
			switch {
			case c.KafkaSASLMechanism != KafkaSASLNone && c.KafkaSASLPassword == "":
				return fmt.Errorf("required with HERALD_KAFKA_SASL_MECHANISM=%s", c.KafkaSASLMechanism)
			case c.KafkaSASLMechanism == KafkaSASLNone && c.KafkaSASLPassword != "":
				return fmt.Errorf("is set but HERALD_KAFKA_SASL_MECHANISM is none")
			}
			return nil
		},
	},
	{
		name: "HERALD_KAFKA_TLS", group: "Kafka security", def: "off",
		doc: "`on` encrypts every Kafka connection and verifies the brokers' certificates " +
			"(against the system roots, or `HERALD_KAFKA_TLS_CA_FILE`). " +
			"An untrusted or misnamed broker certificate stops the worker at start with one line.",
		bind: enum(func(c *Config) *Switch { return &c.KafkaTLS }, Off, On),
	},
	{
		name: "HERALD_KAFKA_TLS_CA_FILE", group: "Kafka security",
		doc: "PEM file of the CA certificates that sign the brokers' certificates, used instead of the system roots " +
			"(a private CA, Strimzi's cluster CA). Needs `HERALD_KAFKA_TLS=on`.",
		bind: text(func(c *Config) *string { return &c.KafkaTLSCAFile }, "path to a PEM file", pemCAFile),
		rule: needsOn("HERALD_KAFKA_TLS", func(c *Config) bool { return c.KafkaTLSCAFile != "" }),
	},
	{
		name: "HERALD_KAFKA_TLS_CERT_FILE", group: "Kafka security",
		doc:  "PEM client certificate for mutual TLS, with `HERALD_KAFKA_TLS_KEY_FILE`. Needs `HERALD_KAFKA_TLS=on`.",
		bind: text(func(c *Config) *string { return &c.KafkaTLSCertFile }, "path to a PEM file", nil),
		rule: needsOn("HERALD_KAFKA_TLS", func(c *Config) bool { return c.KafkaTLSCertFile != "" }),
	},
	{
		name: "HERALD_KAFKA_TLS_KEY_FILE", group: "Kafka security",
		doc: "PEM private key of `HERALD_KAFKA_TLS_CERT_FILE`; mount it from a Secret. " +
			"The pair is loaded and checked at start.",
		bind: text(func(c *Config) *string { return &c.KafkaTLSKeyFile }, "path to a PEM file", nil),
		rule: keyPairRule("HERALD_KAFKA_TLS_CERT_FILE",
			func(c *Config) string { return c.KafkaTLSCertFile }, func(c *Config) string { return c.KafkaTLSKeyFile }),
	},
	{
		name: "HERALD_KAFKA_TLS_SERVER_NAME", group: "Kafka security",
		doc: "Name checked against the brokers' certificates when it is not the host in the broker address " +
			"(brokers reached by IP or through a load balancer). Empty checks the address's host. Needs `HERALD_KAFKA_TLS=on`.",
		bind: text(func(c *Config) *string { return &c.KafkaTLSServerName }, "a DNS name", nil),
		rule: needsOn("HERALD_KAFKA_TLS", func(c *Config) bool { return c.KafkaTLSServerName != "" }),
	},
	{
		name: "HERALD_REDIS_USERNAME", group: "Redis security",
		doc: "Redis ACL user (Redis 6+), instead of a user in `HERALD_REDIS_URL`. " +
			"The user needs `+@scripting +ping +info +get +set +time +del +pexpire +pttl +hmget +hget +hset +hsetnx +hdel +hscan +hexists +zadd +zrem +zscore +zcard +zrange +zrangebyscore +zremrangebyscore +sadd +srem +smembers` on `~herald:* ~rate:herald:*` " +
			"(and `+cluster|slots` with `HERALD_REDIS_MODE=cluster`); `+@all ~*` is simplest. " +
			"A user that may not run one of the start-up checks (`PING`, `EVAL`, `INFO`) stops the worker at start with one line. " +
			"Empty with a password authenticates as the `default` user (`requirepass`).",
		scope: []Role{RoleDispatcher, RoleChannels, RoleGateway},
		bind:  text(func(c *Config) *string { return &c.RedisUsername }, "", nil),
	},
	{
		name: "HERALD_REDIS_PASSWORD", group: "Redis security",
		doc: "Redis password, instead of one in `HERALD_REDIS_URL`; prefer `HERALD_REDIS_PASSWORD_FILE`, so the URL can live in a ConfigMap. " +
			"A refused login stops the worker at start with one line.",
		secret: true, scope: []Role{RoleDispatcher, RoleChannels, RoleGateway},
		bind: text(func(c *Config) *string { return &c.RedisPassword }, "", nil),
		rule: func(c *Config) error {
			if (c.RedisPassword != "" || c.RedisUsername != "") && redisURLHasPassword(c.RedisURL) {
				return fmt.Errorf("HERALD_REDIS_URL carries a password too; set the credentials in one place")
			}
			return nil
		},
	},
	{
		name: "HERALD_REDIS_TLS_CA_FILE", group: "Redis security",
		doc: "PEM file of the CA certificates that sign the Redis server's certificate, instead of the system roots. " +
			"Needs a `rediss://` URL (which turns TLS on).",
		scope: []Role{RoleDispatcher, RoleChannels, RoleGateway},
		bind:  text(func(c *Config) *string { return &c.RedisTLSCAFile }, "path to a PEM file", pemCAFile),
		rule:  needsRediss(func(c *Config) bool { return c.RedisTLSCAFile != "" }),
	},
	{
		name: "HERALD_REDIS_TLS_CERT_FILE", group: "Redis security",
		doc:   "PEM client certificate for Redis servers that require one (`tls-auth-clients yes`), with `HERALD_REDIS_TLS_KEY_FILE`. Needs a `rediss://` URL.",
		scope: []Role{RoleDispatcher, RoleChannels, RoleGateway},
		bind:  text(func(c *Config) *string { return &c.RedisTLSCertFile }, "path to a PEM file", nil),
		rule:  needsRediss(func(c *Config) bool { return c.RedisTLSCertFile != "" }),
	},
	{
		name: "HERALD_REDIS_TLS_KEY_FILE", group: "Redis security",
		doc:   "PEM private key of `HERALD_REDIS_TLS_CERT_FILE`; loaded and checked at start.",
		scope: []Role{RoleDispatcher, RoleChannels, RoleGateway},
		bind:  text(func(c *Config) *string { return &c.RedisTLSKeyFile }, "path to a PEM file", nil),
		rule: keyPairRule("HERALD_REDIS_TLS_CERT_FILE",
			func(c *Config) string { return c.RedisTLSCertFile }, func(c *Config) string { return c.RedisTLSKeyFile }),
	},
}

func needsOn(name string, set func(*Config) bool) func(*Config) error {
	return func(c *Config) error {
		if set(c) && c.KafkaTLS != On {
			return fmt.Errorf("is set but %s is off", name)
		}
		return nil
	}
}

func needsRediss(set func(*Config) bool) func(*Config) error {
	return func(c *Config) error {
		if set(c) && redisScheme(c.RedisURL) != "rediss" {
			return fmt.Errorf("is set but HERALD_REDIS_URL is not a rediss:// URL")
		}
		return nil
	}
}
