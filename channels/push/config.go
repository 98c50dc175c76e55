package push

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"time"

	"golang.org/x/oauth2"
)

// Production defaults.
const (
	DefaultEndpoint = "https://fcm.googleapis.com"
	DefaultTimeout  = 10 * time.Second
)

// DefaultConfig holds the defaults; a zero Endpoint or Timeout also means
// the default.
var DefaultConfig = Config{Endpoint: DefaultEndpoint, Timeout: DefaultTimeout}

// Config configures the FCM sender (docs/contracts.md §5, HERALD_FCM_*).
type Config struct {
	// ProjectID is the Firebase project messages are sent for.
	ProjectID string
	// CredentialsFile is the path of a service-account JSON key file;
	// CredentialsJSON is its content (a Kubernetes secret read elsewhere).
	// Exactly one is required unless TokenSource is set. The file's
	// token_uri is where access tokens are fetched, so a staging or dev key
	// file can point at a fake token endpoint.
	CredentialsFile string
	CredentialsJSON []byte
	// Endpoint is FCM's base URL; tests and staging point it at a fake.
	Endpoint string
	// Timeout bounds one Send, and one access-token fetch.
	Timeout time.Duration
	// TokenSource, when set, supplies access tokens instead of the
	// service-account credentials (e.g. workload identity wired by the
	// caller). It is wrapped in a cache.
	TokenSource oauth2.TokenSource
}

// Google Cloud project IDs: 6–30 lowercase letters, digits and hyphens,
// starting with a letter and not ending with a hyphen; old projects may
// carry a "domain:" prefix.
var projectIDPattern = regexp.MustCompile(`^([a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$`)

// CheckProjectID reports whether id has the form of a Google Cloud
// project ID, for HERALD_FCM_PROJECT_ID to be refused at start with its
// name rather than when the push channel is built.
func CheckProjectID(id string) error {
	if !projectIDPattern.MatchString(id) {
		return fmt.Errorf("%q is not a Google Cloud project ID (6 to 30 lowercase letters, digits and hyphens, starting with a letter)", id)
	}
	return nil
}

// Validate reports the first problem with c, naming the field. It does not
// read CredentialsFile; New does. Zero Endpoint and Timeout are valid and
// mean the defaults.
func (c *Config) Validate() error {
	if c.ProjectID == "" {
		return errors.New("ProjectID is required")
	}
	if err := CheckProjectID(c.ProjectID); err != nil {
		return fmt.Errorf("ProjectID: %w", err)
	}
	switch {
	case c.CredentialsFile != "" && len(c.CredentialsJSON) > 0:
		return errors.New("CredentialsFile and CredentialsJSON are both set; set one")
	case c.CredentialsFile == "" && len(c.CredentialsJSON) == 0 && c.TokenSource == nil:
		return errors.New("CredentialsFile or CredentialsJSON is required")
	case c.Timeout < 0:
		return fmt.Errorf("Timeout %s is negative", c.Timeout)
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		switch {
		case err != nil:
			return fmt.Errorf("Endpoint %q is not a URL: %v", c.Endpoint, err)
		case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			return fmt.Errorf("Endpoint %q is not an absolute http(s) URL", c.Endpoint)
		case u.RawQuery != "" || u.Fragment != "":
			return fmt.Errorf("Endpoint %q must not have a query or fragment", c.Endpoint)
		}
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Endpoint == "" {
		c.Endpoint = DefaultEndpoint
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	return c
}
