package dedupe

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Mode is how Redis is deployed.
type Mode string

const (
	// Single is one server, or a managed primary behind one address.
	Single Mode = "single"
	// Cluster is Redis Cluster: the URLs are seed nodes, and the client
	// follows the slot map, MOVED/ASK redirections and failovers.
	Cluster Mode = "cluster"
	// Sentinel is a master found through Sentinel: the URLs are sentinels,
	// and the client follows the master they elect.
	Sentinel Mode = "sentinel"
)

// Target is where herald's Redis is and how to reach it: every Redis client
// in herald (idempotency keys, suppression lists, the shared rate budget,
// and the operator commands) is made from one by Connect.
type Target struct {
	// URL is one Redis URL, or, for Cluster and Sentinel, a comma-separated
	// list of seeds that differ only in host and port:
	//
	//	redis://[user:password@]host[:port][/db][?option=value...]
	//	rediss://...            (TLS, server name checked against the first host)
	//	unix:///path/to/redis.sock[?db=N]   (Single only)
	//
	// The query options are go-redis's (dial_timeout, read_timeout,
	// pool_size, ...) and apply to every node.
	URL string
	// Mode is Single when empty.
	Mode Mode
	// MasterName is the Sentinel master's name; required with Sentinel.
	MasterName string
	// Security is the credentials and TLS files beyond the URL; for
	// Sentinel they are used with the sentinels as well as the master.
	Security Security
}

// Open returns a client for one Redis URL, as HERALD_REDIS_URL holds it in
// single mode. See Connect.
func Open(rawURL string) (redis.UniversalClient, error) {
	return Connect(Target{URL: rawURL})
}

// Connect returns the client for t: a *redis.Client, *redis.ClusterClient
// or a Sentinel failover client. It does not connect: the first command
// does, and its errors are classified by the Store; run Checker.Check at
// start to refuse a Redis herald cannot keep its promises on. A malformed
// URL yields an error that says what is wrong and shows the URL with its
// password masked, never the password.
func Connect(t Target) (redis.UniversalClient, error) {
	raws := strings.Split(t.URL, ",")
	for i := range raws {
		raws[i] = strings.TrimSpace(raws[i])
	}
	switch t.Mode {
	case "", Single:
		if len(raws) > 1 {
			return nil, fmt.Errorf("redis: %d URLs given for a single server; a list of seeds needs cluster or sentinel mode", len(raws))
		}
	case Cluster, Sentinel:
	default:
		return nil, fmt.Errorf("redis: mode %q is not single, cluster or sentinel", t.Mode)
	}
	if t.Mode == Sentinel && t.MasterName == "" {
		return nil, errors.New("redis: sentinel mode needs the master's name")
	}
	opts, err := parseURL(raws[0])
	if err != nil {
		return nil, err
	}
	if err := t.Security.apply(opts); err != nil {
		return nil, err
	}
	if t.Mode == "" || t.Mode == Single {
		return redis.NewClient(opts), nil
	}

	addrs, err := seedAddrs(raws, t.Mode)
	if err != nil {
		return nil, err
	}
	if t.Mode == Cluster {
		if opts.DB != 0 {
			return nil, errors.New("redis: a cluster has only database 0; remove the database from the URL")
		}
		co := seeds(opts, addrs).Cluster()
		co.ClusterStateReloadInterval = clusterStateReload
		return redis.NewClusterClient(co), nil
	}
	u := seeds(opts, addrs)
	u.MasterName = t.MasterName
	// One set of credentials for the sentinels and the data nodes, as the
	// common charts configure them.
	u.SentinelUsername, u.SentinelPassword = opts.Username, opts.Password
	return redis.NewFailoverClient(u.Failover()), nil
}

// seeds carries the settings parsed from the first URL (and the separate
// security variables) to every seed, in go-redis's own options for a client
// of many nodes; its Cluster and Failover methods make the mode's options.
func seeds(opts *redis.Options, addrs []string) *redis.UniversalOptions {
	return &redis.UniversalOptions{
		Addrs: addrs, ClientName: opts.ClientName, Protocol: opts.Protocol, DB: opts.DB,
		Username: opts.Username, Password: opts.Password, TLSConfig: opts.TLSConfig,
		MaxRetries: opts.MaxRetries, MinRetryBackoff: opts.MinRetryBackoff, MaxRetryBackoff: opts.MaxRetryBackoff,
		DialTimeout: opts.DialTimeout, ReadTimeout: opts.ReadTimeout, WriteTimeout: opts.WriteTimeout,
		ContextTimeoutEnabled: opts.ContextTimeoutEnabled,
		PoolFIFO:              opts.PoolFIFO, PoolSize: opts.PoolSize, PoolTimeout: opts.PoolTimeout,
		MinIdleConns: opts.MinIdleConns, MaxIdleConns: opts.MaxIdleConns, MaxActiveConns: opts.MaxActiveConns,
		ConnMaxIdleTime: opts.ConnMaxIdleTime, ConnMaxLifetime: opts.ConnMaxLifetime,
	}
}

// clusterStateReload bounds how stale the cluster client's slot map may be.
// go-redis reloads it at once on MOVED, ASK or READONLY, but not when a
// master stops answering: after a master crashes, the replica that replaces
// it is seen only at the next periodic reload, 60s by default, and every
// call for that master's slots fails with "connection refused" until then
// (measured: about 60s of failed claims after the election had finished).
// A reload is one CLUSTER SLOTS to one node.
const clusterStateReload = time.Second

// seedAddrs returns host:port of every seed URL, after checking that they
// differ from the first only in host and port: the client has one set of
// credentials, TLS settings and options for every node.
func seedAddrs(raws []string, mode Mode) ([]string, error) {
	defPort := "6379"
	if mode == Sentinel {
		defPort = "26379"
	}
	var first *url.URL
	addrs := make([]string, 0, len(raws))
	for i, raw := range raws {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("redis URL %d is malformed", i+1)
		}
		if u.Scheme != "redis" && u.Scheme != "rediss" {
			return nil, fmt.Errorf("redis URL %s: %s mode needs redis:// or rediss://host:port seeds", u.Redacted(), mode)
		}
		if u.Hostname() == "" {
			return nil, fmt.Errorf("redis URL %s has no host", u.Redacted())
		}
		if first == nil {
			first = u
		} else if u.Scheme != first.Scheme || u.User.String() != first.User.String() || u.Path != first.Path || u.RawQuery != first.RawQuery {
			return nil, fmt.Errorf("redis URL %s differs from the first in more than host and port", u.Redacted())
		}
		port := u.Port()
		if port == "" {
			port = defPort
		}
		addrs = append(addrs, net.JoinHostPort(u.Hostname(), port))
	}
	return addrs, nil
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
