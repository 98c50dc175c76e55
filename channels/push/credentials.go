package push

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/jwt"
)

// Scope is the OAuth scope for sending with FCM.
const Scope = "https://www.googleapis.com/auth/firebase.messaging"

// googleTokenURL is used when a key file has no token_uri, as
// golang.org/x/oauth2/google does.
const googleTokenURL = "https://oauth2.googleapis.com/token"

// serviceAccount holds the fields of a service-account key file that the
// JWT-bearer flow needs.
type serviceAccount struct {
	Type         string `json:"type"`
	ClientEmail  string `json:"client_email"`
	PrivateKeyID string `json:"private_key_id"`
	PrivateKey   string `json:"private_key"`
	TokenURI     string `json:"token_uri"`
}

// jwtConfigFromJSON is golang.org/x/oauth2/google.JWTConfigFromJSON, which
// this module cannot import: that package pulls in
// cloud.google.com/go/compute/metadata, a dependency herald does not carry.
// It builds the same jwt.Config — token_uri honoured as given, Google's
// token URL when absent — and additionally parses the private key, so a
// broken key file fails at start rather than on the first send.
func jwtConfigFromJSON(b []byte, scope ...string) (*jwt.Config, error) {
	var f serviceAccount
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	switch {
	case f.Type != "service_account":
		return nil, fmt.Errorf("'type' is %q, want \"service_account\"", f.Type)
	case f.ClientEmail == "":
		return nil, errors.New("client_email is empty")
	case f.PrivateKey == "":
		return nil, errors.New("private_key is empty")
	}
	if err := checkKey([]byte(f.PrivateKey)); err != nil {
		return nil, fmt.Errorf("private_key: %w", err)
	}
	cfg := &jwt.Config{
		Email:        f.ClientEmail,
		PrivateKey:   []byte(f.PrivateKey),
		PrivateKeyID: f.PrivateKeyID,
		Scopes:       append([]string(nil), scope...),
		TokenURL:     f.TokenURI,
	}
	if cfg.TokenURL == "" {
		cfg.TokenURL = googleTokenURL
	}
	return cfg, nil
}

// checkKey accepts what golang.org/x/oauth2/jwt accepts: an RSA key as
// PKCS #8 or PKCS #1, PEM-encoded.
func checkKey(pemKey []byte) error {
	block, _ := pem.Decode(pemKey)
	if block == nil {
		return errors.New("not PEM")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return err
		}
	}
	if _, ok := key.(*rsa.PrivateKey); !ok {
		return fmt.Errorf("%T is not an RSA key", key)
	}
	return nil
}

// tokens caches access tokens for every Send and drops one FCM refused.
//
// oauth2's own cache (ReuseTokenSource) keeps a token until it expires; if
// the token is revoked earlier (a deleted or rotated key), every send would
// fail with 401 until then. On such a 401 the sender calls refused, which
// starts a fresh source so the next Send fetches a new token. Sends that
// fail with the same stale token concurrently cause one refetch, not many.
type tokens struct {
	fresh func() oauth2.TokenSource // nil when the source cannot be renewed

	mu   sync.Mutex
	src  oauth2.TokenSource
	last string // access token src last returned
}

// newTokens caches src. fresh, when not nil, makes a new source to replace
// one whose token was refused.
func newTokens(src oauth2.TokenSource, fresh func() oauth2.TokenSource) *tokens {
	return &tokens{fresh: fresh, src: src}
}

// Token returns the cached token, fetching one when none is valid. Fetches
// are serialised by the oauth2 cache, so concurrent Sends share one.
func (t *tokens) Token() (*oauth2.Token, error) {
	t.mu.Lock()
	src := t.src
	t.mu.Unlock()
	tok, err := src.Token()
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	if t.src == src {
		t.last = tok.AccessToken
	}
	t.mu.Unlock()
	return tok, nil
}

// refused drops the cached token if it is still accessToken.
func (t *tokens) refused(accessToken string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fresh == nil || accessToken == "" || t.last != accessToken {
		return
	}
	t.src, t.last = t.fresh(), ""
}

// tokenClientContext is the context the JWT flow fetches tokens with: its
// HTTP client shares the sender's pooled transport and bounds each fetch.
func tokenClientContext(rt http.RoundTripper, cfg Config) context.Context {
	return context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: rt, Timeout: cfg.Timeout})
}
