// Package jwtauth verifies the bearer tokens that herald's realtime gateway
// accepts.
//
// A client presents a JSON Web Token either in an "Authorization: Bearer"
// header or, for browsers' EventSource which cannot set headers, in an
// access_token query parameter (see [FromRequest]). A [Verifier] checks it
// against exactly one algorithm, chosen when the verifier is built:
//
//   - HS256 with a shared secret ([NewHS256]), typically from
//     HERALD_GATEWAY_JWT_SECRET;
//   - RS256 with the RSA public keys of a JSON Web Key Set ([NewRS256],
//     [LoadRS256]), typically from the file named by HERALD_GATEWAY_JWKS_FILE.
//
// Pinning the algorithm per verifier is what prevents algorithm confusion: an
// HS256 verifier refuses RS256, HS512 and "none" tokens, and an RS256
// verifier refuses HS256 tokens even when their HMAC key is the RSA public
// key an attacker can read from the JWKS.
//
// A token is accepted only if its signature verifies, it has an exp claim
// that has not passed, any nbf or iat claim is not in the future (each with
// 30 seconds of leeway for clock skew), and its sub claim is a person id
// matching ^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$. Tokens longer than 8 KiB are
// refused before any parsing. The iss and aud claims are not checked.
//
// Every rejection wraps [ErrUnauthorized] with a short reason meant for logs;
// no error ever contains the token or a key.
package jwtauth

import (
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

const (
	// leeway is the clock skew tolerated on exp, nbf and iat.
	leeway = 30 * time.Second

	// maxTokenLen bounds the token accepted by Verify. It is checked before
	// any base64 or JSON decoding so that oversized input costs nothing.
	maxTokenLen = 8 << 10

	// minSecretLen is the shortest HS256 secret accepted: RFC 7518 §3.2
	// requires a key at least as long as the hash output (256 bits).
	minSecretLen = 32

	// maxJWKSLen bounds the JWKS document read by LoadRS256 and NewRS256.
	maxJWKSLen = 1 << 20

	// minRSABits is the smallest RSA modulus accepted from a JWKS.
	minRSABits = 2048

	// maxSkipReasons caps how many skipped keys NewRS256 describes in its
	// error, so that a large foreign JWKS does not produce a huge message.
	maxSkipReasons = 8
)

// personID is the shape of a sub claim: herald's id for a person.
var personID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$`)

// ErrUnauthorized is wrapped by every error Verify returns, so that a caller
// can answer 401 with errors.Is(err, ErrUnauthorized) and log the rest of the
// message as the reason.
var ErrUnauthorized = errors.New("unauthorized")

// Reasons Verify gives for refusing a token. They are built once: Verify
// returns them as they are, so a refusal does not allocate an error.
var (
	errNoVerifier   = deny("no verifier configured")
	errNoToken      = deny("no token")
	errTooLarge     = deny("token too large")
	errMalformed    = deny("malformed token")
	errNoAlg        = deny("no signing method")
	errBadAlg       = deny("unexpected signing method")
	errCrit         = deny("unsupported critical header")
	errKIDType      = deny("kid is not a string")
	errUnknownKID   = deny("unknown kid")
	errSignature    = deny("signature invalid")
	errNoExp        = deny("no exp claim")
	errExpired      = deny("token expired")
	errNotYetValid  = deny("token not valid yet")
	errIssuedFuture = deny("token issued in the future")
	errTimeRange    = deny("time claim out of range")
	errNoSub        = deny("no sub claim")
	errBadSub       = deny("sub is not a person id")
	errInvalid      = deny("invalid token")
)

func deny(reason string) error { return fmt.Errorf("%w: %s", ErrUnauthorized, reason) }

// Claims is what a verified token says about its bearer.
type Claims struct {
	// Subject is the sub claim: the id of the person the token speaks for.
	Subject string
	// Expires is the exp claim. A caller holding a long-lived connection
	// (a server-sent event stream, a websocket) should end it then.
	Expires time.Time
}

// Verifier checks tokens signed with one algorithm and one set of keys. It
// is immutable once built and safe for concurrent use. The zero value
// refuses every token; build one with [NewHS256], [NewRS256] or
// [LoadRS256].
type Verifier struct {
	// method is the only signing method accepted. The keyfunc also compares
	// the parsed method against it by identity, so that a method registered
	// under the same name by other code cannot stand in for it.
	method jwt.SigningMethod

	// secret is the HS256 key; nil for RS256.
	secret []byte

	// byKID holds the RS256 keys of each key id, for tokens with a kid;
	// all holds every RS256 key, tried in turn for tokens without one.
	byKID map[string]jwt.VerificationKeySet
	all   jwt.VerificationKeySet
}

// NewHS256 returns a verifier for HS256 tokens signed with secret.
//
// The secret must be at least 32 bytes, the HMAC-SHA256 output size that
// RFC 7518 requires; a shorter one is refused rather than silently weakening
// every token. The error names the length, never the secret. The secret is
// copied, so the caller may wipe or reuse its slice.
func NewHS256(secret []byte) (*Verifier, error) {
	if err := checkSecret(secret); err != nil {
		return nil, err
	}
	return &Verifier{
		method: jwt.SigningMethodHS256,
		secret: append([]byte(nil), secret...),
	}, nil
}

func checkSecret(secret []byte) error {
	if len(secret) < minSecretLen {
		return fmt.Errorf("jwtauth: HS256 secret is %d bytes, need at least %d", len(secret), minSecretLen)
	}
	return nil
}

// NewRS256 returns a verifier for RS256 tokens signed by a key of the JSON
// Web Key Set jwks (the bytes of a JWKS document, as RFC 7517 §5 defines
// it, at most 1 MiB).
//
// A key is used if it is an RSA public key of at least 2048 bits whose
// "use" is "sig" or absent, whose "alg" is "RS256" or absent, and whose
// "key_ops", if present, include "verify". Other keys (EC keys, encryption
// keys, key types go-jose does not know) are skipped, as RFC 7517 advises,
// so that one published set can serve several purposes. If no key is usable
// the error says why each was skipped.
//
// A document that holds any private or symmetric key material ("d", "p",
// "q", "dp", "dq", "qi", "oth", "k", "priv") is refused outright, even if
// it also holds usable keys: a JWKS for verification must be public, and a
// private key found on the gateway's disk is a deployment mistake worth
// stopping for.
func NewRS256(jwks []byte) (*Verifier, error) {
	if len(jwks) > maxJWKSLen {
		return nil, fmt.Errorf("jwtauth: JWKS is %d bytes, larger than %d", len(jwks), maxJWKSLen)
	}
	// Each key is decoded on its own rather than with a single unmarshal of
	// jose.JSONWebKeySet: that would fail on the whole set for one key of a
	// type go-jose does not support, and would hide which key held private
	// material.
	var doc struct {
		Keys *[]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(jwks, &doc); err != nil {
		return nil, fmt.Errorf("jwtauth: JWKS is not a JSON Web Key Set: %w", err)
	}
	if doc.Keys == nil {
		return nil, errors.New(`jwtauth: JWKS has no "keys" member (is it a single JWK instead of a key set?)`)
	}
	if len(*doc.Keys) == 0 {
		return nil, errors.New("jwtauth: JWKS holds no keys")
	}

	var (
		set     jose.JSONWebKeySet
		skipped []string
	)
	for i, raw := range *doc.Keys {
		var members map[string]json.RawMessage
		if err := json.Unmarshal(raw, &members); err != nil {
			return nil, fmt.Errorf("jwtauth: JWKS key %d is not a JSON object", i)
		}
		name := keyName(i, members)
		if m := privateMember(members); m != "" {
			return nil, fmt.Errorf("jwtauth: JWKS %s holds private key material (%s); a verification JWKS must hold public keys only", name, short(m))
		}
		key, reason := usableKey(raw, members)
		if reason != "" {
			skipped = append(skipped, name+": "+reason)
			continue
		}
		set.Keys = append(set.Keys, key)
	}
	if len(set.Keys) == 0 {
		if len(skipped) > maxSkipReasons {
			skipped = append(skipped[:maxSkipReasons], fmt.Sprintf("and %d more", len(skipped)-maxSkipReasons))
		}
		return nil, fmt.Errorf("jwtauth: JWKS holds no usable RSA public key: %s", strings.Join(skipped, "; "))
	}

	v := &Verifier{method: jwt.SigningMethodRS256, byKID: make(map[string]jwt.VerificationKeySet)}
	for _, k := range set.Keys {
		v.all.Keys = append(v.all.Keys, k.Key)
		if k.KeyID != "" {
			ks := v.byKID[k.KeyID]
			ks.Keys = append(ks.Keys, k.Key)
			v.byKID[k.KeyID] = ks
		}
	}
	return v, nil
}

// privateMember returns the name of a member of a JWK that carries private
// or symmetric key material, or "" if there is none. Names are compared as
// encoding/json matches struct fields, ignoring case, so that "D" cannot
// slip a private exponent past this check and into go-jose's decoder.
func privateMember(members map[string]json.RawMessage) string {
	for _, m := range []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"} {
		if _, ok := members[m]; ok {
			return m
		}
		for name := range members {
			if strings.EqualFold(name, m) {
				return name
			}
		}
	}
	return ""
}

// usableKey decodes one JWK and returns it if it can verify RS256
// signatures, or else a reason for skipping it.
func usableKey(raw json.RawMessage, members map[string]json.RawMessage) (jose.JSONWebKey, string) {
	var kty string
	_ = json.Unmarshal(members["kty"], &kty)
	if kty != "RSA" {
		if kty == "" {
			return jose.JSONWebKey{}, "no kty"
		}
		return jose.JSONWebKey{}, fmt.Sprintf("not an RSA key (kty %s)", short(kty))
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(raw); err != nil {
		return jose.JSONWebKey{}, err.Error()
	}
	pub, ok := k.Key.(*rsa.PublicKey)
	if !ok || !k.IsPublic() || !k.Valid() {
		return jose.JSONWebKey{}, "not an RSA public key"
	}
	if k.Use != "" && k.Use != "sig" {
		return jose.JSONWebKey{}, fmt.Sprintf(`use is %s, not "sig"`, short(k.Use))
	}
	if k.Algorithm != "" && k.Algorithm != "RS256" {
		return jose.JSONWebKey{}, fmt.Sprintf("alg is %s, not RS256", short(k.Algorithm))
	}
	if ops, ok := members["key_ops"]; ok {
		var list []string
		if err := json.Unmarshal(ops, &list); err != nil {
			return jose.JSONWebKey{}, "key_ops is not a list of strings"
		}
		verify := false
		for _, op := range list {
			verify = verify || op == "verify"
		}
		if !verify {
			return jose.JSONWebKey{}, `key_ops lacks "verify"`
		}
	}
	if bits := pub.N.BitLen(); bits < minRSABits {
		return jose.JSONWebKey{}, fmt.Sprintf("RSA modulus is %d bits, need at least %d", bits, minRSABits)
	}
	return k, ""
}

// keyName names the i-th key of a JWKS in errors: its index, and its kid
// when it has one.
func keyName(i int, members map[string]json.RawMessage) string {
	var kid string
	if json.Unmarshal(members["kid"], &kid) == nil && kid != "" {
		return fmt.Sprintf("key %d (kid %s)", i, short(kid))
	}
	return fmt.Sprintf("key %d", i)
}

// short quotes s for an error message, cut to a length a log line can bear.
func short(s string) string {
	const limit = 64
	if len(s) > limit {
		return fmt.Sprintf("%q...", s[:limit])
	}
	return fmt.Sprintf("%q", s)
}

// LoadRS256 reads the JWKS file at path and returns [NewRS256] of its
// contents. A file larger than 1 MiB is refused without reading it all.
// Every error names the path, so that a misconfigured
// HERALD_GATEWAY_JWKS_FILE is easy to find.
func LoadRS256(path string) (*Verifier, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("jwtauth: JWKS file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxJWKSLen+1))
	if err != nil {
		return nil, fmt.Errorf("jwtauth: JWKS file %s: %w", path, err)
	}
	if len(data) > maxJWKSLen {
		return nil, fmt.Errorf("jwtauth: JWKS file %s is larger than %d bytes", path, maxJWKSLen)
	}
	v, err := NewRS256(data)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return v, nil
}

// Verify checks token and returns the subject and expiry it carries.
//
// now is the clock against which exp, nbf and iat are judged (time.Now() in
// production; a fixed time in tests). Every error wraps [ErrUnauthorized]
// and gives a short reason such as "token expired", "no exp claim",
// "unexpected signing method RS256" or "sub is not a person id"; none
// contains the token.
func (v *Verifier) Verify(token string, now time.Time) (Claims, error) {
	if v == nil || v.method == nil {
		return Claims{}, errNoVerifier
	}
	if token == "" {
		return Claims{}, errNoToken
	}
	if len(token) > maxTokenLen {
		return Claims{}, errTooLarge
	}

	// The parser is built per call because the clock is per call; it is a
	// handful of small allocations.
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{v.method.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
		// Refuse non-canonical base64 (stray trailing bits), so that one
		// signed token has exactly one accepted spelling.
		jwt.WithStrictDecoding(),
	)
	var pc personClaims
	tok, err := p.ParseWithClaims(token, &pc, v.keyFor)
	if err != nil {
		return Claims{}, v.reason(tok, err)
	}
	if pc.Subject == "" {
		return Claims{}, errNoSub
	}
	if !personID.MatchString(pc.Subject) {
		return Claims{}, errBadSub
	}
	if pc.ExpiresAt == nil { // guaranteed by WithExpirationRequired; kept as a guard
		return Claims{}, errNoExp
	}
	return Claims{Subject: pc.Subject, Expires: pc.ExpiresAt.Time}, nil
}

// personClaims is the payload Verify reads. It stands in for
// jwt.RegisteredClaims because that type converts any JSON number to a time
// through a float-to-int64 conversion whose overflow is
// implementation-defined: on amd64 an nbf of 1e30 becomes a date long past
// and the token is accepted. boundedDate refuses such values instead. The
// iss and aud claims are not read, since nothing checks them.
type personClaims struct {
	Subject   string       `json:"sub"`
	ExpiresAt *boundedDate `json:"exp"`
	NotBefore *boundedDate `json:"nbf"`
	IssuedAt  *boundedDate `json:"iat"`
}

func (c *personClaims) GetExpirationTime() (*jwt.NumericDate, error) { return c.ExpiresAt.date(), nil }
func (c *personClaims) GetNotBefore() (*jwt.NumericDate, error)      { return c.NotBefore.date(), nil }
func (c *personClaims) GetIssuedAt() (*jwt.NumericDate, error)       { return c.IssuedAt.date(), nil }
func (c *personClaims) GetSubject() (string, error)                  { return c.Subject, nil }
func (c *personClaims) GetIssuer() (string, error)                   { return "", nil }
func (c *personClaims) GetAudience() (jwt.ClaimStrings, error)       { return nil, nil }

// maxNumericDate is 9999-12-31T23:59:59Z in seconds since the epoch: the
// largest time claim, before or after 1970, that Verify takes as a time.
const maxNumericDate = 253402300799

// boundedDate is a NumericDate (RFC 7519 §2) that must be a JSON number
// of at most maxNumericDate seconds either side of the epoch.
type boundedDate struct{ jwt.NumericDate }

func (d *boundedDate) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	if math.IsNaN(f) || math.Abs(f) > maxNumericDate {
		return errTimeRange
	}
	sec, frac := math.Modf(f)
	d.NumericDate = *jwt.NewNumericDate(time.Unix(int64(sec), int64(frac*1e9)))
	return nil
}

func (d *boundedDate) date() *jwt.NumericDate {
	if d == nil {
		return nil
	}
	return &d.NumericDate
}

// keyFor is the jwt.Keyfunc: it runs after the parser has checked the alg
// header against WithValidMethods and before the signature is verified.
func (v *Verifier) keyFor(t *jwt.Token) (any, error) {
	if t.Method != v.method {
		return nil, errBadAlg
	}
	// RFC 7515 §4.1.11: a recipient must refuse a token whose crit header
	// names extensions it does not understand, and this one understands none.
	if _, ok := t.Header["crit"]; ok {
		return nil, errCrit
	}
	if v.secret != nil {
		return v.secret, nil
	}
	if h, ok := t.Header["kid"]; ok {
		kid, ok := h.(string)
		if !ok {
			return nil, errKIDType
		}
		if kid != "" {
			ks, ok := v.byKID[kid]
			if !ok {
				return nil, errUnknownKID
			}
			return ks, nil
		}
	}
	return v.all, nil
}

// reason turns a jwt parse error into one of the short errors above. Only
// the alg name of the token may appear in it, and only when it looks like
// an algorithm name.
func (v *Verifier) reason(tok *jwt.Token, err error) error {
	for _, own := range []error{errBadAlg, errCrit, errKIDType, errUnknownKID, errTimeRange} {
		if errors.Is(err, own) {
			return own
		}
	}
	if errors.Is(err, jwt.ErrTokenMalformed) || tok == nil {
		return errMalformed
	}
	alg, ok := tok.Header["alg"].(string)
	if !ok {
		return errNoAlg
	}
	if alg != v.method.Alg() {
		if isAlgName(alg) {
			return deny("unexpected signing method " + alg)
		}
		return errBadAlg
	}
	switch {
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return errSignature
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return errNoExp
	case errors.Is(err, jwt.ErrTokenExpired):
		return errExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return errNotYetValid
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return errIssuedFuture
	}
	return errInvalid
}

// isAlgName reports whether s is short and made only of the characters of
// JOSE algorithm names, so that it can go into a log line verbatim.
func isAlgName(s string) bool {
	if s == "" || len(s) > 16 {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '+' || c == '_') {
			return false
		}
	}
	return true
}

// FromRequest returns the bearer token of r, and whether it has one.
//
// An "Authorization: Bearer <token>" header wins; its scheme is matched
// case-insensitively (RFC 9110 §11.1). Failing that, the access_token query
// parameter is used, because browsers' EventSource cannot set headers. An
// Authorization header with another scheme (Basic, say) is ignored rather
// than refused. The token is returned unchecked: pass it to
// [Verifier.Verify].
//
// Tokens in URLs end up in access logs and browser history; callers should
// keep them short-lived and keep query strings out of their own logs.
func FromRequest(r *http.Request) (token string, ok bool) {
	if r == nil {
		return "", false
	}
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, rest, found := strings.Cut(strings.TrimSpace(h), " ")
		if found && strings.EqualFold(scheme, "Bearer") {
			if t := strings.TrimSpace(rest); t != "" {
				return t, true
			}
		}
	}
	if r.URL != nil {
		if t := r.URL.Query().Get("access_token"); t != "" {
			return t, true
		}
	}
	return "", false
}

// MintHS256 returns an HS256 token for sub, issued at now and expiring ttl
// later. It exists for "herald dev", which hands out development tokens,
// and for tests; production tokens come from the identity provider.
//
// It refuses what Verify would refuse: a secret under 32 bytes, a sub that
// is not a person id, a ttl that is not positive. Times are whole seconds,
// so the token expires at now+ttl rounded down to the second.
func MintHS256(secret []byte, sub string, now time.Time, ttl time.Duration) (string, error) {
	if err := checkSecret(secret); err != nil {
		return "", err
	}
	if !personID.MatchString(sub) {
		return "", errors.New("jwtauth: sub is not a person id")
	}
	if ttl <= 0 {
		return "", fmt.Errorf("jwtauth: ttl %v is not positive", ttl)
	}
	claims := jwt.RegisteredClaims{
		Subject:   sub,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("jwtauth: signing: %w", err)
	}
	return s, nil
}
