package dedupe

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gymhq/herald/internal/tlsfiles"
)

// Security is how herald authenticates to Redis and checks its certificate,
// beyond what the URL says: an ACL user and password kept out of the URL
// (so the URL can live in a ConfigMap and the password in a Secret), and a
// private CA and client certificate for rediss:// URLs.
type Security struct {
	// Username and Password replace the URL's user info; the URL must then
	// carry no password. A password without a user name authenticates as
	// the default user (requirepass).
	Username, Password string
	// CAFile is a PEM bundle of the CAs that sign the server's
	// certificate, instead of the system roots.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and key, for
	// servers with tls-auth-clients yes.
	CertFile, KeyFile string
}

// OpenSecure is Open with sec applied: a single server. It does not
// connect; call CheckAccess at start to turn refused credentials into a
// start-up error.
func OpenSecure(rawURL string, sec Security) (redis.UniversalClient, error) {
	return Connect(Target{URL: rawURL, Security: sec})
}

// apply sets sec on options parsed from a URL.
func (sec Security) apply(opts *redis.Options) error {
	if sec.Username != "" || sec.Password != "" {
		if opts.Password != "" {
			return errors.New("redis: the URL carries a password and a separate one is set; use one")
		}
		opts.Username, opts.Password = sec.Username, sec.Password
	}
	if sec.CAFile != "" || sec.CertFile != "" || sec.KeyFile != "" {
		if opts.TLSConfig == nil {
			return errors.New("redis: TLS files are set but the URL is not rediss://")
		}
		if err := tlsfiles.Apply(opts.TLSConfig, sec.CAFile, sec.CertFile, sec.KeyFile); err != nil {
			return fmt.Errorf("redis %w", err)
		}
	}
	return nil
}

// CheckAccess pings Redis once and returns an error if the server refuses
// herald's credentials or certificate, or herald refuses the server's:
// configuration that waiting will not fix, so a worker should stop at start
// rather than pause forever. A server that cannot be reached is not an
// error here: workers start, report not ready, and claim nothing until it
// answers (fail closed).
func CheckAccess(ctx context.Context, client redis.UniversalClient) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// EVAL too: the store runs Lua scripts, and an ACL user allowed PING
	// but not scripts would otherwise pass here and fail every claim.
	err := client.Ping(ctx).Err()
	if err == nil {
		err = client.Eval(ctx, "return 1", nil).Err()
	}
	if err == nil || !accessRefused(err) {
		return nil
	}
	return fmt.Errorf("redis refused the connection: %w", err)
}

func accessRefused(err error) bool {
	if tlsfiles.Refused(err) {
		return true
	}
	// Server replies: a wrong user or password, a command the ACL user may
	// not run, a password the server does not expect, a database it does
	// not have (the URL's /N, selected on every connection).
	msg := err.Error()
	for _, p := range []string{"WRONGPASS", "NOAUTH", "NOPERM", "ERR AUTH", "ERR invalid password", "ERR Client sent AUTH",
		"ERR DB index is out of range", "ERR invalid DB index"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}
