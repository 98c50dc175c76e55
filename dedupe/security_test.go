package dedupe_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/internal/testpki"
)

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// TestSecureRedis runs a redis-server with a TLS port and an ACL user
// (the default user may only PING) and connects as herald would.
func TestSecureRedis(t *testing.T) {
	pki := testpki.New(t, "redis.test", "127.0.0.1")
	other := testpki.New(t, "redis.test", "127.0.0.1")
	port := freePort(t)
	redistest.StartWith(t,
		"--tls-port", port, "--tls-cert-file", pki.ServerCertFile, "--tls-key-file", pki.ServerKeyFile,
		"--tls-ca-cert-file", pki.CAFile, "--tls-auth-clients", "optional",
		"--user", "herald", "on", ">acl-s3cret", "~*", "+@all",
		"--user", "default", "on", "nopass", "-@all", "+ping",
	)
	addr := "127.0.0.1:" + port
	for _, tc := range []struct {
		name, url string
		sec       dedupe.Security
		refused   string // "" = must work
	}{
		{"ACL user in the URL, private CA", "rediss://herald:acl-s3cret@" + addr + "/0", dedupe.Security{CAFile: pki.CAFile}, ""},
		{"ACL user from settings, client certificate", "rediss://" + addr + "/0",
			dedupe.Security{Username: "herald", Password: "acl-s3cret", CAFile: pki.CAFile, CertFile: pki.CertFile, KeyFile: pki.KeyFile}, ""},
		{"wrong password", "rediss://" + addr + "/0", dedupe.Security{Username: "herald", Password: "not-the-password", CAFile: pki.CAFile}, "WRONGPASS"},
		{"no credentials: default user may not run scripts", "rediss://" + addr + "/0", dedupe.Security{CAFile: pki.CAFile}, "NOPERM"},
		{"untrusted CA", "rediss://herald:acl-s3cret@" + addr + "/0", dedupe.Security{CAFile: other.CAFile}, "certificate"},
		{"system roots do not know the test CA", "rediss://herald:acl-s3cret@" + addr + "/0", dedupe.Security{}, "certificate"},
		{"plaintext to the TLS port", "redis://herald:acl-s3cret@" + addr + "/0", dedupe.Security{}, ""},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			client, err := dedupe.OpenSecure(tc.url, tc.sec)
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			ctx := context.Background()
			err = dedupe.CheckAccess(ctx, client)
			switch {
			case tc.name == "plaintext to the TLS port":
				// The server closes the connection: indistinguishable from
				// an outage, so not a start-up error; workers stay unready.
				if err != nil {
					t.Errorf("CheckAccess: %v", err)
				}
				if client.Ping(ctx).Err() == nil {
					t.Error("plaintext PING to the TLS port answered")
				}
			case tc.refused != "":
				if err == nil || !strings.Contains(err.Error(), tc.refused) {
					t.Fatalf("CheckAccess: %v, want %q", err, tc.refused)
				}
				if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "not-the-password") {
					t.Errorf("error shows the password: %v", err)
				}
				t.Logf("%v", err)
			default:
				if err != nil {
					t.Fatalf("CheckAccess: %v", err)
				}
				who, err := client.Do(ctx, "ACL", "WHOAMI").Text()
				if err != nil || who != "herald" {
					t.Errorf("ACL WHOAMI = %q, %v", who, err)
				}
				store := dedupe.NewRedis(client, dedupe.Options{Retention: time.Hour})
				defer store.Close()
				c, err := store.Claim(ctx, "n-secure-"+strconv.Itoa(len(tc.name)), "owner", time.Minute)
				if err != nil || !c.Acquired {
					t.Errorf("claim over TLS as the ACL user: %+v, %v", c, err)
				}
			}
		})
	}
}

func TestOpenSecureChecksSettings(t *testing.T) {
	pki := testpki.New(t, "127.0.0.1")
	for _, tc := range []struct {
		url  string
		sec  dedupe.Security
		want string
	}{
		{"redis://:pw@127.0.0.1:6379/0", dedupe.Security{Password: "other"}, "use one"},
		{"redis://127.0.0.1:6379/0", dedupe.Security{CAFile: pki.CAFile}, "not rediss://"},
		{"rediss://127.0.0.1:6379/0", dedupe.Security{CAFile: pki.KeyFile}, "no PEM certificate"},
		{"rediss://127.0.0.1:6379/0", dedupe.Security{CertFile: pki.CertFile}, "client certificate"},
	} {
		_, err := dedupe.OpenSecure(tc.url, tc.sec)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %+v: %v, want %q", tc.url, tc.sec, err, tc.want)
		}
	}
}

// TestDatabaseOutOfRangeIsRefused: a URL naming a database the server does
// not have is configuration that waiting will not fix. go-redis selects it
// on every new connection, and the server answers "ERR DB index is out of
// range"; a worker used to wait for Redis forever on it.
func TestDatabaseOutOfRangeIsRefused(t *testing.T) {
	srv := redistest.StartWith(t, "--databases", "16")
	client := connect(t, dedupe.Target{URL: srv.URL() + "?db=99"})
	err := dedupe.CheckAccess(context.Background(), client)
	if err == nil || !strings.Contains(err.Error(), "DB index") {
		t.Fatalf("CheckAccess: %v, want a refusal naming the DB index", err)
	}
	if ok := connect(t, dedupe.Target{URL: srv.URL() + "?db=15"}); dedupe.CheckAccess(context.Background(), ok) != nil {
		t.Errorf("database 15 of 16 refused")
	}
}
