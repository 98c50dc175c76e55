package dedupe

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Open returns a client for a Redis URL, as HERALD_REDIS_URL holds it:
//
//	redis://[user:password@]host[:port][/db][?option=value...]
//	rediss://...            (TLS, server name checked against host)
//	unix:///path/to/redis.sock[?db=N]
//
// The query options are go-redis's (dial_timeout, read_timeout, pool_size,
// ...). Open does not connect: the first command does, and its errors are
// classified by the Store. A malformed URL yields an error that says what is
// wrong and shows the URL with its password masked, never the password.
func Open(rawURL string) (redis.UniversalClient, error) {
	opts, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return redis.NewClient(opts), nil
}

// parseURL is Open without the client.
func parseURL(rawURL string) (*redis.Options, error) {
	if strings.TrimSpace(rawURL) == "" {
		return nil, errors.New("redis URL is empty (want redis://host:port/db, rediss://... or unix:///path)")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// net/url quotes parts of the URL in its messages, and with an
		// unescaped '/' or '@' in a password the quoted part can be the
		// password, so drop every quoted fragment.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("redis URL is malformed: %s (percent-encode special characters in the user name and password)",
			quoted.ReplaceAllString(err.Error(), `"…"`))
	}
	switch u.Scheme {
	case "redis", "rediss", "unix":
	default:
		return nil, fmt.Errorf("redis URL %s: scheme %q is not supported (want redis://, rediss:// or unix://)", u.Redacted(), u.Scheme)
	}
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis URL %s: %w", u.Redacted(), err)
	}
	return opts, nil
}

var quoted = regexp.MustCompile(`"[^"]*"`)
