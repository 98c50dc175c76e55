package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gymhq/herald/address"
)

// binding connects a variable to its Config field. Parsing only turns text
// into the field's type; limits are in check, so that Validate holds a Config
// built in code to the same rules as one loaded from the environment.
type binding struct {
	// kind is the value's type as shown by -h and the docs.
	kind string
	// accepts describes the valid values for the docs; "" is anything.
	accepts string
	// parse stores raw ("" for not set) in the field.
	parse func(c *Config, raw string) error
	// format renders the field as it would be written in the environment.
	format func(c *Config) string
	// isSet reports whether the field holds a value rather than "not set".
	isSet func(c *Config) bool
	// check reports what is wrong with a set value, without the variable's
	// name. For a secret it must not quote the value.
	check func(c *Config) error
}

// text is a string field; check, if not nil, checks a non-empty value.
func text(field func(*Config) *string, accepts string, check func(string) error) binding {
	b := binding{
		kind:    "string",
		accepts: accepts,
		parse:   func(c *Config, raw string) error { *field(c) = raw; return nil },
		format:  func(c *Config) string { return *field(c) },
		isSet:   func(c *Config) bool { return *field(c) != "" },
	}
	if check != nil {
		b.check = func(c *Config) error { return check(*field(c)) }
	}
	return b
}

// list is a comma-separated list of strings, each checked with check.
func list(field func(*Config) *[]string, accepts string, check func(string) error) binding {
	return binding{
		kind:    "list",
		accepts: accepts,
		parse: func(c *Config, raw string) error {
			var xs []string
			if raw != "" {
				xs = strings.Split(raw, ",")
				for i := range xs {
					xs[i] = strings.TrimSpace(xs[i])
				}
			}
			*field(c) = xs
			return nil
		},
		format: func(c *Config) string { return strings.Join(*field(c), ",") },
		isSet:  func(c *Config) bool { return len(*field(c)) > 0 },
		check: func(c *Config) error {
			for i, x := range *field(c) {
				if x == "" {
					return fmt.Errorf("entry %d of %q is empty", i+1, strings.Join(*field(c), ","))
				}
				if err := check(x); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// integer is an int field within min..max, or equal to one of also.
func integer(field func(*Config) *int, min, max int, also ...int) binding {
	accepts := fmt.Sprintf("%d..%d", min, max)
	for _, a := range also {
		accepts = fmt.Sprintf("%d or %s", a, accepts)
	}
	return binding{
		kind:    "int",
		accepts: accepts,
		parse: func(c *Config, raw string) error {
			if raw == "" {
				*field(c) = 0
				return nil
			}
			n, err := strconv.Atoi(raw)
			if err != nil {
				return fmt.Errorf("%q is not an integer", raw)
			}
			*field(c) = n
			return nil
		},
		format: func(c *Config) string { return strconv.Itoa(*field(c)) },
		isSet:  func(*Config) bool { return true },
		check: func(c *Config) error {
			n := *field(c)
			for _, a := range also {
				if n == a {
					return nil
				}
			}
			if n < min || n > max {
				return fmt.Errorf("%d is out of range %s", n, accepts)
			}
			return nil
		},
	}
}

// duration is a time.Duration field within min..max. When optional, zero
// means not set and is not checked against the range.
func duration(field func(*Config) *time.Duration, min, max time.Duration, optional bool) binding {
	accepts := fmtDuration(min) + ".." + fmtDuration(max)
	return binding{
		kind:    "duration",
		accepts: accepts,
		parse: func(c *Config, raw string) error {
			if raw == "" {
				*field(c) = 0
				return nil
			}
			d, err := time.ParseDuration(raw)
			if err != nil {
				return fmt.Errorf("%q is not a duration (e.g. 500ms, 15s, 2m, 24h)", raw)
			}
			*field(c) = d
			return nil
		},
		format: func(c *Config) string {
			if optional && *field(c) == 0 {
				return ""
			}
			return fmtDuration(*field(c))
		},
		isSet: func(c *Config) bool { return !optional || *field(c) != 0 },
		check: func(c *Config) error {
			if d := *field(c); d < min || d > max {
				return fmt.Errorf("%s is out of range %s", fmtDuration(d), accepts)
			}
			return nil
		},
	}
}

// enum is a string-typed field that must be one of values.
func enum[T ~string](field func(*Config) *T, values ...T) binding {
	names := make([]string, len(values))
	for i, v := range values {
		names[i] = string(v)
	}
	accepts := strings.Join(names, ", ")
	return binding{
		kind:    "enum",
		accepts: "one of " + accepts,
		parse:   func(c *Config, raw string) error { *field(c) = T(raw); return nil },
		format:  func(c *Config) string { return string(*field(c)) },
		// Always checked: an empty value in a Config built in code is an
		// error, not a silent default.
		isSet: func(*Config) bool { return true },
		check: func(c *Config) error {
			v := *field(c)
			for _, x := range values {
				if v == x {
					return nil
				}
			}
			return fmt.Errorf("%q is not one of %s", v, accepts)
		},
	}
}

// fmtDuration is time.Duration.String without trailing zero units: 5m, not
// 5m0s; 168h, not 168h0m0s.
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// hostPort checks host:port with a numeric port in minPort..65535 and, if
// needHost, a non-empty host.
func hostPort(needHost bool, minPort int) func(string) error {
	return func(s string) error {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			var ae *net.AddrError
			if errors.As(err, &ae) {
				return fmt.Errorf("%q is not host:port: %s", s, ae.Err)
			}
			return fmt.Errorf("%q is not host:port", s)
		}
		if needHost && host == "" {
			return fmt.Errorf("%q has no host", s)
		}
		if n, err := strconv.Atoi(port); err != nil || n < minPort || n > 65535 {
			return fmt.Errorf("%q: port %q is not a number in %d..65535", s, port, minPort)
		}
		return nil
	}
}

// httpURL checks an absolute http or https URL with a host.
func httpURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	return nil
}

// redisURL checks a go-redis URL. The URL may hold a password, so no message
// quotes it.
func redisURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return fmt.Errorf("not a valid URL: %v", ue.Err)
		}
		return errors.New("not a valid URL")
	}
	switch u.Scheme {
	case "redis", "rediss":
		if u.Hostname() == "" {
			return fmt.Errorf("has no host (want %s://host:port/db)", u.Scheme)
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return fmt.Errorf("port %q is not a number in 1..65535", p)
			}
		}
		if db := strings.TrimPrefix(u.Path, "/"); db != "" {
			if n, err := strconv.Atoi(db); err != nil || n < 0 {
				return fmt.Errorf("database %q in the path is not a number", db)
			}
		}
	case "unix":
		if u.Path == "" {
			return errors.New("has no socket path (want unix:///path/to/redis.sock)")
		}
	default:
		return fmt.Errorf("scheme %q is not redis, rediss or unix", u.Scheme)
	}
	return nil
}

// redisURLs checks HERALD_REDIS_URL: one go-redis URL, or a comma-separated
// list of them (the seeds of a cluster or the sentinels), each checked with
// redisURL. Whether a list is allowed depends on HERALD_REDIS_MODE, whose
// rule checks it.
func redisURLs(s string) error {
	urls := splitURLs(s)
	for i, u := range urls {
		if u == "" {
			return fmt.Errorf("entry %d of the comma-separated list is empty", i+1)
		}
		if err := redisURL(u); err != nil {
			if len(urls) > 1 {
				return fmt.Errorf("entry %d: %w", i+1, err)
			}
			return err
		}
	}
	return nil
}

// splitURLs splits HERALD_REDIS_URL at its commas.
func splitURLs(s string) []string {
	xs := strings.Split(s, ",")
	for i := range xs {
		xs[i] = strings.TrimSpace(xs[i])
	}
	return xs
}

// redactRedisURL shows a Redis URL, or a comma-separated list of them, with
// every password as ***.
func redactRedisURL(s string) string {
	urls := splitURLs(s)
	for i, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			urls[i] = "***"
			continue
		}
		// url.Redacted writes the password as xxxxx; the colon before it
		// and the @ after it cannot occur unescaped in a user name.
		urls[i] = strings.Replace(u.Redacted(), ":xxxxx@", ":***@", 1)
	}
	return strings.Join(urls, ",")
}

// emailAddress checks an RFC 5322 address; a display name is allowed.
func emailAddress(s string) error {
	if _, err := mail.ParseAddress(s); err != nil {
		return fmt.Errorf("%q is not an email address: %v", s, strings.TrimPrefix(err.Error(), "mail: "))
	}
	return nil
}

// prefixed checks that s starts with p and has more after it.
func twilioSID(p string) func(string) error {
	re := regexp.MustCompile(`^` + p + `[0-9a-fA-F]{32}$`)
	return func(s string) error {
		if !re.MatchString(s) {
			return fmt.Errorf("%q is not a Twilio SID: want %s followed by 32 hex digits", s, p)
		}
		return nil
	}
}

var (
	e164Sender      = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)
	shortCodeSender = regexp.MustCompile(`^[0-9]{5,6}$`)
	alphaSender     = regexp.MustCompile(`^[A-Za-z0-9 ]{1,11}$`)
	hasLetter       = regexp.MustCompile(`[A-Za-z]`)
)

// twilioSender checks a Twilio From: an E.164 number, a short code, or an
// alphanumeric sender ID (1–11 letters, digits and spaces, at least one
// letter) — what channels/sms accepts, checked here so that the error names
// the variable and comes with every other configuration error at once.
func twilioSender(s string) error {
	if e164Sender.MatchString(s) || shortCodeSender.MatchString(s) || alphaSender.MatchString(s) && hasLetter.MatchString(s) {
		return nil
	}
	return fmt.Errorf("%q is not an E.164 number (+ and 7 to 15 digits), a 5–6 digit short code or an alphanumeric sender ID (up to 11 letters, digits and spaces)", s)
}

// ValidKafkaName refuses a topic or group name Kafka would: empty, longer
// than 249 bytes, "." or "..", or with a byte outside A-Z a-z 0-9 . _ -.
func ValidKafkaName(s string) error {
	if s == "" {
		return errors.New("an empty name is not a valid Kafka name")
	}
	return kafkaName(s)
}

// kafkaName checks a Kafka topic name or client id: the characters Kafka
// allows in topic names, at most 249 of them. An empty value never
// reaches it (a setting left empty takes its default).
func kafkaName(s string) error {
	if len(s) > 249 || s == "." || s == ".." {
		return fmt.Errorf("%q is not a valid Kafka name (1..249 of A-Z a-z 0-9 . _ -)", s)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%q is not a valid Kafka name (1..249 of A-Z a-z 0-9 . _ -)", s)
		}
	}
	return nil
}

// directory checks that s is an existing directory.
func directory(s string) error {
	fi, err := os.Stat(s)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", s)
	}
	return nil
}

// serviceAccountFile checks a Google service-account key file without
// keeping its contents: it must be readable JSON of type service_account with
// the fields needed to sign a token request.
func serviceAccountFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var sa struct {
		Type        string `json:"type"`
		ClientEmail string `json:"client_email"`
		PrivateKey  string `json:"private_key"`
		TokenURI    string `json:"token_uri"`
	}
	if err := json.Unmarshal(b, &sa); err != nil {
		return fmt.Errorf("%s is not JSON: %v", path, err)
	}
	switch {
	case sa.Type != "service_account":
		return fmt.Errorf("%s has type %q, want \"service_account\"", path, sa.Type)
	case sa.ClientEmail == "":
		return fmt.Errorf("%s has no client_email", path)
	case sa.PrivateKey == "":
		return fmt.Errorf("%s has no private_key", path)
	case sa.TokenURI != "" && httpURL(sa.TokenURI) != nil:
		return fmt.Errorf("%s: token_uri %q is not an absolute http(s) URL", path, sa.TokenURI)
	}
	return nil
}

// e164Prefix accepts a country calling code or a longer E.164 prefix.
func e164Prefix(s string) error { return address.CheckPrefix(s) }

// e164PrefixOrNone is e164Prefix, or the word none.
func e164PrefixOrNone(s string) error {
	if s == "none" {
		return nil
	}
	return address.CheckPrefix(s)
}
