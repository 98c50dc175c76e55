package jwtauth_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/gymhq/herald/gateway/jwtauth"
)

// t0 is the clock of every test: tokens are minted and verified against it.
var t0 = time.Date(2030, time.March, 4, 12, 0, 0, 0, time.UTC)

var testSecret = []byte("herald-test-secret-0123456789abcdef")

// rsaKeys generates the RSA keys once per test binary: 2048-bit generation
// takes long enough that doing it per test would dominate the run.
var rsaKeys = sync.OnceValues(func() ([3]*rsa.PrivateKey, error) {
	var ks [3]*rsa.PrivateKey
	for i := range ks {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return ks, err
		}
		ks[i] = k
	}
	return ks, nil
})

// keys returns the signing key (kid "k1"), a second key published beside it
// (kid "k0"), and a key that is not published at all.
func keys(tb testing.TB) (signer, other, stranger *rsa.PrivateKey) {
	tb.Helper()
	ks, err := rsaKeys()
	if err != nil {
		tb.Fatal(err)
	}
	return ks[0], ks[1], ks[2]
}

func claims(sub string, mods ...func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub": sub,
		"iat": t0.Unix(),
		"exp": t0.Add(time.Hour).Unix(),
	}
	for _, m := range mods {
		m(c)
	}
	return c
}

func with(k string, v any) func(jwt.MapClaims) { return func(c jwt.MapClaims) { c[k] = v } }
func without(k string) func(jwt.MapClaims)     { return func(c jwt.MapClaims) { delete(c, k) } }

// sign signs c with method and key, setting the extra header fields given.
func sign(tb testing.TB, method jwt.SigningMethod, key any, c jwt.Claims, header map[string]any) string {
	tb.Helper()
	tok := jwt.NewWithClaims(method, c)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func hs(tb testing.TB, c jwt.Claims) string {
	return sign(tb, jwt.SigningMethodHS256, testSecret, c, nil)
}

func rs(tb testing.TB, key *rsa.PrivateKey, kid any, c jwt.Claims) string {
	var h map[string]any
	if kid != nil {
		h = map[string]any{"kid": kid}
	}
	return sign(tb, jwt.SigningMethodRS256, key, c, h)
}

func noneToken(tb testing.TB, c jwt.Claims) string {
	return sign(tb, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, c, nil)
}

// jwk describes a key for a JWKS, as go-jose would publish it.
func jwk(key any, kid, use, alg string) jose.JSONWebKey {
	return jose.JSONWebKey{Key: key, KeyID: kid, Use: use, Algorithm: alg}
}

func jwks(tb testing.TB, ks ...jose.JSONWebKey) []byte {
	tb.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: ks})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func hsVerifier(tb testing.TB) *jwtauth.Verifier {
	tb.Helper()
	v, err := jwtauth.NewHS256(testSecret)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// rsVerifier trusts the signer as "k1" and the other key as "k0"; k0 comes
// first, so a token without a kid must be tried against more than one key.
func rsVerifier(tb testing.TB) *jwtauth.Verifier {
	tb.Helper()
	signer, other, _ := keys(tb)
	v, err := jwtauth.NewRS256(jwks(tb,
		jwk(&other.PublicKey, "k0", "sig", "RS256"),
		jwk(&signer.PublicKey, "k1", "sig", "RS256"),
	))
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// checkRefusal asserts err is a refusal with the reason want, and that its
// text leaks neither the token nor the secret.
func checkRefusal(t *testing.T, err error, want, token string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted; want refusal %q", want)
	}
	if !errors.Is(err, jwtauth.ErrUnauthorized) {
		t.Errorf("error %q does not wrap ErrUnauthorized", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q; want it to contain %q", err, want)
	}
	if len(token) > 8 && strings.Contains(err.Error(), token) {
		t.Errorf("error %q contains the token", err)
	}
	for _, part := range strings.Split(token, ".") {
		if len(part) > 8 && strings.Contains(err.Error(), part) {
			t.Errorf("error %q contains a token segment", err)
		}
	}
	if strings.Contains(err.Error(), string(testSecret)) {
		t.Errorf("error %q contains the secret", err)
	}
}

type verifyCase struct {
	name    string
	token   string
	now     time.Time // t0 if zero
	wantSub string    // set for an accepted token
	wantErr string    // set for a refused one
}

func runVerifyCases(t *testing.T, v *jwtauth.Verifier, cases []verifyCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.now
			if now.IsZero() {
				now = t0
			}
			got, err := v.Verify(tc.token, now)
			if tc.wantErr != "" {
				checkRefusal(t, err, tc.wantErr, tc.token)
				if got != (jwtauth.Claims{}) {
					t.Errorf("refusal returned claims %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if got.Subject != tc.wantSub {
				t.Errorf("Subject = %q, want %q", got.Subject, tc.wantSub)
			}
			if got.Expires.IsZero() {
				t.Errorf("Expires is zero")
			}
		})
	}
}

func TestVerifyHS256(t *testing.T) {
	signer, _, _ := keys(t)
	valid := hs(t, claims("person-42"))

	// A signature whose last base64 character differs only in the padding
	// bits decodes to the same bytes; strict decoding must refuse it.
	sig := valid[strings.LastIndexByte(valid, '.')+1:]
	last := strings.IndexByte("AEIMQUYcgkosw048", sig[len(sig)-1])
	if last < 0 {
		t.Fatalf("signature of 32 bytes should end in a character with two zero bits, got %q", sig[len(sig)-1])
	}
	nonCanonical := valid[:len(valid)-1] + string("BFJNRVZdhlptx159"[last])

	cases := []verifyCase{
		{name: "valid", token: valid, wantSub: "person-42"},
		{name: "valid sub with every allowed character", token: hs(t, claims("A9_.:@-z")), wantSub: "A9_.:@-z"},
		{name: "valid sub of 128 characters", token: hs(t, claims(strings.Repeat("a", 128))), wantSub: strings.Repeat("a", 128)},
		{name: "valid without iat", token: hs(t, claims("p", without("iat"))), wantSub: "p"},
		{name: "valid with past nbf", token: hs(t, claims("p", with("nbf", t0.Add(-time.Minute).Unix()))), wantSub: "p"},
		{name: "expired beyond leeway", token: hs(t, claims("p", with("exp", t0.Add(-31*time.Second).Unix()))), wantErr: "token expired"},
		{name: "expired within leeway", token: hs(t, claims("p", with("exp", t0.Add(-29*time.Second).Unix()))), wantSub: "p"},
		{name: "expired long ago", token: valid, now: t0.Add(2 * time.Hour), wantErr: "token expired"},
		{name: "missing exp", token: hs(t, claims("p", without("exp"))), wantErr: "no exp claim"},
		{name: "exp not a number", token: hs(t, claims("p", with("exp", "tomorrow"))), wantErr: "malformed token"},
		{name: "exp a number in a string", token: hs(t, claims("p", with("exp", "1900000000"))), wantErr: "malformed token"},
		{name: "exp null", token: hs(t, claims("p", with("exp", nil))), wantErr: "no exp claim"},
		{name: "exp with fraction", token: hs(t, claims("p", with("exp", float64(t0.Unix())+0.5))), wantSub: "p"},
		// Values past int64 seconds once wrapped to dates long past, which
		// let an nbf or iat in the far future through.
		{name: "exp out of range", token: hs(t, claims("p", with("exp", 1e300))), wantErr: "time claim out of range"},
		{name: "nbf out of range", token: hs(t, claims("p", with("nbf", 1.898855e73))), wantErr: "time claim out of range"},
		{name: "iat out of range", token: hs(t, claims("p", with("iat", 1e30))), wantErr: "time claim out of range"},
		{name: "nbf out of range, negative", token: hs(t, claims("p", with("nbf", -1e30))), wantErr: "time claim out of range"},
		{name: "nbf in year 9999", token: hs(t, claims("p", with("nbf", 253402300799))), wantErr: "token not valid yet"},
		{name: "exp in year 9999", token: hs(t, claims("p", with("exp", 253402300799))), wantSub: "p"},
		{name: "aud and iss ignored", token: hs(t, claims("p", with("aud", 7), with("iss", []int{1}))), wantSub: "p"},
		{name: "missing sub", token: hs(t, claims("p", without("sub"))), wantErr: "no sub claim"},
		{name: "empty sub", token: hs(t, claims("")), wantErr: "no sub claim"},
		{name: "sub not a string", token: hs(t, claims("p", with("sub", 42))), wantErr: "malformed token"},
		{name: "sub with space", token: hs(t, claims("a b")), wantErr: "sub is not a person id"},
		{name: "sub starting with dash", token: hs(t, claims("-p")), wantErr: "sub is not a person id"},
		{name: "sub with trailing newline", token: hs(t, claims("p\n")), wantErr: "sub is not a person id"},
		{name: "sub with slash", token: hs(t, claims("../admin")), wantErr: "sub is not a person id"},
		{name: "sub not ascii", token: hs(t, claims("pérson")), wantErr: "sub is not a person id"},
		{name: "sub of 129 characters", token: hs(t, claims(strings.Repeat("a", 129))), wantErr: "sub is not a person id"},
		{name: "nbf in future", token: hs(t, claims("p", with("nbf", t0.Add(time.Minute).Unix()))), wantErr: "token not valid yet"},
		{name: "nbf within leeway", token: hs(t, claims("p", with("nbf", t0.Add(29*time.Second).Unix()))), wantSub: "p"},
		{name: "iat in future", token: hs(t, claims("p", with("iat", t0.Add(time.Minute).Unix()))), wantErr: "token issued in the future"},
		{name: "wrong secret", token: sign(t, jwt.SigningMethodHS256, []byte("another-secret-of-32-bytes-or-more!!"), claims("p"), nil), wantErr: "signature invalid"},
		{name: "alg none", token: noneToken(t, claims("p")), wantErr: "unexpected signing method none"},
		{name: "alg none with the HS256 signature", token: strings.Replace(valid, valid[:strings.IndexByte(valid, '.')], b64(`{"alg":"none","typ":"JWT"}`), 1), wantErr: "unexpected signing method none"},
		{name: "HS512 with the right secret", token: sign(t, jwt.SigningMethodHS512, testSecret, claims("p"), nil), wantErr: "unexpected signing method HS512"},
		{name: "HS384 with the right secret", token: sign(t, jwt.SigningMethodHS384, testSecret, claims("p"), nil), wantErr: "unexpected signing method HS384"},
		{name: "RS256", token: rs(t, signer, "k1", claims("p")), wantErr: "unexpected signing method RS256"},
		{name: "unknown alg", token: b64(`{"alg":"XX999"}`) + "." + b64(`{}`) + ".", wantErr: "unexpected signing method XX999"},
		{name: "alg with odd characters", token: b64(`{"alg":"HS256\n\u0000"}`) + "." + b64(`{"sub":"p"}`) + ".", wantErr: "unexpected signing method"},
		{name: "no alg", token: b64(`{"typ":"JWT"}`) + "." + b64(`{"sub":"p"}`) + ".", wantErr: "no signing method"},
		{name: "crit header", token: sign(t, jwt.SigningMethodHS256, testSecret, claims("p"), map[string]any{"crit": []string{"exp"}}), wantErr: "unsupported critical header"},
		{name: "non-canonical base64 signature", token: nonCanonical, wantErr: "malformed token"},
		{name: "empty", token: "", wantErr: "no token"},
		{name: "one segment", token: "abcdefghijkl", wantErr: "malformed token"},
		{name: "four segments", token: valid + ".abc", wantErr: "malformed token"},
		{name: "garbage segments", token: "a.b.c", wantErr: "malformed token"},
		{name: "header not JSON", token: b64("nope") + "." + b64(`{}`) + ".sig", wantErr: "malformed token"},
		{name: "signature stripped", token: valid[:strings.LastIndexByte(valid, '.')+1], wantErr: "signature invalid"},
	}
	runVerifyCases(t, hsVerifier(t), cases)
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestVerifyHS256TokenSize(t *testing.T) {
	v := hsVerifier(t)
	// Pad a claim until the token just fits, then by a little more.
	var fits, tooBig string
	for n := 5500; n < 7000 && tooBig == ""; n++ {
		tok := hs(t, claims("p", with("pad", strings.Repeat("x", n))))
		switch {
		case len(tok) <= 8<<10:
			fits = tok
		default:
			tooBig = tok
		}
	}
	if len(fits) < 8<<10-4 || len(tooBig) > 8<<10+4 {
		t.Fatalf("padding did not bracket the limit: %d and %d bytes", len(fits), len(tooBig))
	}
	if _, err := v.Verify(fits, t0); err != nil {
		t.Errorf("token of %d bytes refused: %v", len(fits), err)
	}
	_, err := v.Verify(tooBig, t0)
	checkRefusal(t, err, "token too large", tooBig)

	// Size is checked before parsing: a huge junk token gets the same answer.
	_, err = v.Verify(strings.Repeat("a.", 1<<20), t0)
	checkRefusal(t, err, "token too large", "")
}

func TestVerifyRS256(t *testing.T) {
	signer, other, stranger := keys(t)
	pub := &signer.PublicKey
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(pub)})
	jwksBytes := jwks(t, jwk(pub, "k1", "sig", "RS256"))

	cases := []verifyCase{
		{name: "valid with kid", token: rs(t, signer, "k1", claims("person-7")), wantSub: "person-7"},
		{name: "valid with the other kid", token: rs(t, other, "k0", claims("person-0")), wantSub: "person-0"},
		{name: "valid without kid", token: rs(t, signer, nil, claims("person-7")), wantSub: "person-7"},
		{name: "valid with empty kid", token: rs(t, signer, "", claims("person-7")), wantSub: "person-7"},
		{name: "wrong kid", token: rs(t, signer, "k9", claims("p")), wantErr: "unknown kid"},
		{name: "kid of the other key", token: rs(t, signer, "k0", claims("p")), wantErr: "signature invalid"},
		{name: "kid not a string", token: rs(t, signer, 1, claims("p")), wantErr: "kid is not a string"},
		{name: "unpublished key with kid", token: rs(t, stranger, "k1", claims("p")), wantErr: "signature invalid"},
		{name: "unpublished key without kid", token: rs(t, stranger, nil, claims("p")), wantErr: "signature invalid"},
		{name: "expired", token: rs(t, signer, "k1", claims("p", with("exp", t0.Add(-time.Minute).Unix()))), wantErr: "token expired"},
		{name: "missing exp", token: rs(t, signer, "k1", claims("p", without("exp"))), wantErr: "no exp claim"},
		{name: "bad sub", token: rs(t, signer, "k1", claims("not a person")), wantErr: "sub is not a person id"},
		{name: "RS512 by the right key", token: sign(t, jwt.SigningMethodRS512, signer, claims("p"), map[string]any{"kid": "k1"}), wantErr: "unexpected signing method RS512"},
		{name: "PS256 by the right key", token: sign(t, jwt.SigningMethodPS256, signer, claims("p"), map[string]any{"kid": "k1"}), wantErr: "unexpected signing method PS256"},
		{name: "alg none", token: noneToken(t, claims("p")), wantErr: "unexpected signing method none"},
		// The classic confusion attack: the public key is public, so an
		// attacker HMACs a token with it and hopes the verifier feeds the same
		// bytes to HMAC. Every plausible encoding of the key is tried.
		{name: "HS256 keyed with PEM public key", token: sign(t, jwt.SigningMethodHS256, pemKey, claims("p"), map[string]any{"kid": "k1"}), wantErr: "unexpected signing method HS256"},
		{name: "HS256 keyed with PKCS1 PEM", token: sign(t, jwt.SigningMethodHS256, pkcs1, claims("p"), nil), wantErr: "unexpected signing method HS256"},
		{name: "HS256 keyed with DER public key", token: sign(t, jwt.SigningMethodHS256, der, claims("p"), nil), wantErr: "unexpected signing method HS256"},
		{name: "HS256 keyed with the JWKS bytes", token: sign(t, jwt.SigningMethodHS256, jwksBytes, claims("p"), nil), wantErr: "unexpected signing method HS256"},
		{name: "HS256 keyed with the modulus", token: sign(t, jwt.SigningMethodHS256, pub.N.Bytes(), claims("p"), nil), wantErr: "unexpected signing method HS256"},
		{name: "HS256 with the HS test secret", token: hs(t, claims("p")), wantErr: "unexpected signing method HS256"},
	}
	runVerifyCases(t, rsVerifier(t), cases)
}

func TestNewRS256(t *testing.T) {
	signer, _, _ := keys(t)
	pub := &signer.PublicKey
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	privateJWKS := jwks(t, jwk(signer, "k1", "sig", "RS256"))
	// The same private key with "d" spelled "D": encoding/json (and so
	// go-jose) matches member names without regard to case.
	upperD := strings.Replace(string(privateJWKS), `"d":`, `"D":`, 1)
	if upperD == string(privateJWKS) {
		t.Fatal(`private JWKS has no "d" member`)
	}
	// A set with a key type go-jose cannot decode, beside a usable key.
	var mixed struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(jwks(t, jwk(pub, "k1", "sig", "")), &mixed); err != nil {
		t.Fatal(err)
	}
	mixed.Keys = append([]json.RawMessage{json.RawMessage(`{"kty":"OKP","crv":"X25519","x":"AAAA","use":"enc"}`)}, mixed.Keys...)
	mixedJWKS, err := json.Marshal(mixed)
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name    string
		jwks    []byte
		wantErr []string // all must appear; none means accepted
	}{
		{name: "one key", jwks: jwks(t, jwk(pub, "k1", "sig", "RS256"))},
		{name: "no use, no alg, no kid", jwks: jwks(t, jwk(pub, "", "", ""))},
		{name: "EC key beside RSA key", jwks: jwks(t, jwk(&ec.PublicKey, "ec", "sig", "ES256"), jwk(pub, "k1", "sig", "RS256"))},
		{name: "encryption key beside signing key", jwks: jwks(t, jwk(pub, "enc", "enc", ""), jwk(pub, "k1", "sig", ""))},
		{name: "unsupported key type beside RSA key", jwks: mixedJWKS},
		{name: "private RSA key", jwks: privateJWKS, wantErr: []string{"private key material", `"d"`, "k1"}},
		{name: "private RSA key beside a public one", jwks: jwks(t, jwk(pub, "k1", "sig", ""), jwk(signer, "k2", "sig", "")), wantErr: []string{"private key material", "key 1"}},
		{name: "private key with upper-case member", jwks: []byte(upperD), wantErr: []string{"private key material", `"D"`}},
		{name: "private EC key", jwks: jwks(t, jwk(ec, "ec", "sig", "")), wantErr: []string{"private key material"}},
		{name: "symmetric key", jwks: jwks(t, jwk(testSecret, "hmac", "sig", "HS256")), wantErr: []string{"private key material", `"k"`}},
		{name: "only an EC key", jwks: jwks(t, jwk(&ec.PublicKey, "ec", "sig", "")), wantErr: []string{"no usable RSA public key", `not an RSA key (kty "EC")`, `kid "ec"`}},
		{name: "only an encryption key", jwks: jwks(t, jwk(pub, "k1", "enc", "")), wantErr: []string{"no usable RSA public key", `use is "enc"`}},
		{name: "only an RS512 key", jwks: jwks(t, jwk(pub, "k1", "sig", "RS512")), wantErr: []string{"no usable RSA public key", `alg is "RS512"`}},
		{name: "key_ops without verify", jwks: []byte(strings.Replace(string(jwks(t, jwk(pub, "k1", "", ""))), `"kty"`, `"key_ops":["encrypt"],"kty"`, 1)), wantErr: []string{`key_ops lacks "verify"`}},
		{name: "1024-bit key", jwks: jwks(t, jwk(&small.PublicKey, "small", "sig", "")), wantErr: []string{"no usable RSA public key", "1024 bits"}},
		{name: "RSA key missing n", jwks: []byte(`{"keys":[{"kty":"RSA","e":"AQAB"}]}`), wantErr: []string{"no usable RSA public key", "missing n/e"}},
		{name: "no kty", jwks: []byte(`{"keys":[{"n":"AQAB","e":"AQAB"}]}`), wantErr: []string{"no usable RSA public key", "no kty"}},
		{name: "empty key set", jwks: []byte(`{"keys":[]}`), wantErr: []string{"holds no keys"}},
		{name: "no keys member", jwks: []byte(`{}`), wantErr: []string{`no "keys" member`}},
		{name: "single JWK instead of a set", jwks: func() []byte { b, _ := json.Marshal(jwk(pub, "k1", "sig", "")); return b }(), wantErr: []string{`no "keys" member`}},
		{name: "keys not an array", jwks: []byte(`{"keys":"k1"}`), wantErr: []string{"not a JSON Web Key Set"}},
		{name: "key not an object", jwks: []byte(`{"keys":[1]}`), wantErr: []string{"key 0 is not a JSON object"}},
		{name: "not JSON", jwks: []byte("-----BEGIN PUBLIC KEY-----"), wantErr: []string{"not a JSON Web Key Set"}},
		{name: "truncated", jwks: jwks(t, jwk(pub, "k1", "sig", ""))[:40], wantErr: []string{"not a JSON Web Key Set"}},
		{name: "empty", jwks: nil, wantErr: []string{"not a JSON Web Key Set"}},
		{name: "over 1 MiB", jwks: append([]byte(`{"keys":[]}`), make([]byte, 1<<20)...), wantErr: []string{"larger than"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := jwtauth.NewRS256(tc.jwks)
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				tok := rs(t, signer, nil, claims("p"))
				if _, err := v.Verify(tok, t0); err != nil {
					t.Errorf("token of the published key refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if v != nil {
				t.Error("returned a verifier with an error")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q; want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadRS256(t *testing.T) {
	signer, _, _ := keys(t)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.json", jwks(t, jwk(&signer.PublicKey, "k1", "sig", "RS256")))
	v, err := jwtauth.LoadRS256(good)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := v.Verify(rs(t, signer, "k1", claims("p")), t0); err != nil || c.Subject != "p" {
		t.Fatalf("Verify = %+v, %v", c, err)
	}

	for name, path := range map[string]string{
		"missing":   filepath.Join(dir, "missing.json"),
		"directory": dir,
		"too large": write("big.json", make([]byte, 1<<20+1)),
		"private":   write("private.json", jwks(t, jwk(signer, "k1", "sig", ""))),
		"malformed": write("bad.json", []byte("{")),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := jwtauth.LoadRS256(path)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the path", err)
			}
		})
	}
}

func TestNewHS256(t *testing.T) {
	short := []byte("a-31-byte-secret-xxxxxxxxxxxxxx")
	if len(short) != 31 {
		t.Fatalf("short secret is %d bytes", len(short))
	}
	for _, secret := range [][]byte{nil, {}, short} {
		v, err := jwtauth.NewHS256(secret)
		if err == nil || v != nil {
			t.Fatalf("NewHS256 of %d bytes = %v, %v; want an error", len(secret), v, err)
		}
		if !strings.Contains(err.Error(), "at least 32") {
			t.Errorf("error %q does not name the problem", err)
		}
		if len(secret) > 0 && strings.Contains(err.Error(), string(secret)) {
			t.Errorf("error %q contains the secret", err)
		}
	}
	if _, err := jwtauth.NewHS256(short[:0:0]); err == nil {
		t.Error("empty secret accepted")
	}

	// The verifier keeps its own copy of the secret.
	secret := append([]byte(nil), testSecret...)
	v, err := jwtauth.NewHS256(secret)
	if err != nil {
		t.Fatal(err)
	}
	for i := range secret {
		secret[i] = 0
	}
	if _, err := v.Verify(hs(t, claims("p")), t0); err != nil {
		t.Errorf("verifier affected by the caller wiping its secret: %v", err)
	}
}

func TestZeroVerifier(t *testing.T) {
	tok := hs(t, claims("p"))
	for name, v := range map[string]*jwtauth.Verifier{"nil": nil, "zero": {}} {
		t.Run(name, func(t *testing.T) {
			_, err := v.Verify(tok, t0)
			checkRefusal(t, err, "no verifier configured", tok)
		})
	}
}

func TestMintHS256(t *testing.T) {
	tok, err := jwtauth.MintHS256(testSecret, "person-1", t0, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	v := hsVerifier(t)
	c, err := v.Verify(tok, t0)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "person-1" || !c.Expires.Equal(t0.Add(10*time.Minute)) {
		t.Errorf("claims = %+v", c)
	}
	_, err = v.Verify(tok, t0.Add(10*time.Minute+31*time.Second))
	checkRefusal(t, err, "token expired", tok)

	for name, args := range map[string]struct {
		secret []byte
		sub    string
		ttl    time.Duration
		want   string
	}{
		"short secret": {[]byte("short"), "p", time.Minute, "at least 32"},
		"bad sub":      {testSecret, "no spaces", time.Minute, "not a person id"},
		"empty sub":    {testSecret, "", time.Minute, "not a person id"},
		"zero ttl":     {testSecret, "p", 0, "not positive"},
		"negative ttl": {testSecret, "p", -time.Minute, "not positive"},
	} {
		t.Run(name, func(t *testing.T) {
			tok, err := jwtauth.MintHS256(args.secret, args.sub, t0, args.ttl)
			if err == nil {
				t.Fatalf("minted %q", tok)
			}
			if !strings.Contains(err.Error(), args.want) {
				t.Errorf("error %q; want it to contain %q", err, args.want)
			}
		})
	}
}

func TestFromRequest(t *testing.T) {
	cases := []struct {
		name   string
		url    string
		header string // Authorization, if not empty
		want   string
		wantOK bool
	}{
		{name: "header", url: "/events", header: "Bearer hdr.tok.en", want: "hdr.tok.en", wantOK: true},
		{name: "lowercase bearer", url: "/events", header: "bearer hdr.tok.en", want: "hdr.tok.en", wantOK: true},
		{name: "uppercase bearer", url: "/events", header: "BEARER hdr.tok.en", want: "hdr.tok.en", wantOK: true},
		{name: "extra spaces", url: "/events", header: "  Bearer   hdr.tok.en  ", want: "hdr.tok.en", wantOK: true},
		{name: "query", url: "/events?access_token=qry.tok.en", want: "qry.tok.en", wantOK: true},
		{name: "query among others", url: "/events?topic=x&access_token=qry.tok.en&y=1", want: "qry.tok.en", wantOK: true},
		{name: "header wins over query", url: "/events?access_token=qry.tok.en", header: "Bearer hdr.tok.en", want: "hdr.tok.en", wantOK: true},
		{name: "other scheme falls back to query", url: "/events?access_token=qry.tok.en", header: "Basic dXNlcjpwdw==", want: "qry.tok.en", wantOK: true},
		{name: "other scheme alone", url: "/events", header: "Basic dXNlcjpwdw=="},
		{name: "bearer without token", url: "/events", header: "Bearer "},
		{name: "bearer without space", url: "/events", header: "Bearerhdr.tok.en"},
		{name: "scheme only", url: "/events", header: "Bearer"},
		{name: "empty query", url: "/events?access_token="},
		{name: "other query parameter", url: "/events?token=x"},
		{name: "nothing", url: "/events"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tc.url, nil)
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			got, ok := jwtauth.FromRequest(r)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("FromRequest = %q, %v; want %q, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
	if got, ok := jwtauth.FromRequest(nil); got != "" || ok {
		t.Errorf("FromRequest(nil) = %q, %v", got, ok)
	}
}

// TestVerifyConcurrent gives the race detector a verifier shared by
// goroutines, as the gateway's handlers share one.
func TestVerifyConcurrent(t *testing.T) {
	signer, _, _ := keys(t)
	hv, rv := hsVerifier(t), rsVerifier(t)
	htok, rtok := hs(t, claims("p")), rs(t, signer, "k1", claims("p"))
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Go(func() {
			for j := 0; j < 20; j++ {
				if _, err := hv.Verify(htok, t0); err != nil {
					t.Error(err)
				}
				if _, err := rv.Verify(rtok, t0); err != nil {
					t.Error(err)
				}
				if _, err := hv.Verify(htok, t0.Add(time.Duration(j)*time.Hour)); j > 1 && err == nil {
					t.Error("expired token accepted")
				}
			}
		})
	}
	wg.Wait()
}

// personID is the rule of the package, restated so that the fuzz oracle
// does not trust the code it checks.
var personID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$`)

// signedWith reports whether tok is header.payload.signature with the
// signature, in canonical base64url, being sig(header.payload).
func signedWith(tok string, check func(input, sig []byte) bool) bool {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return false
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(parts[2])
	if err != nil {
		return false
	}
	return check([]byte(parts[0]+"."+parts[1]), sig)
}

func hmacOK(secret []byte) func(input, sig []byte) bool {
	return func(input, sig []byte) bool {
		m := hmac.New(sha256.New, secret)
		m.Write(input)
		return hmac.Equal(m.Sum(nil), sig)
	}
}

func rsaOK(pub *rsa.PublicKey) func(input, sig []byte) bool {
	return func(input, sig []byte) bool {
		h := sha256.Sum256(input)
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], sig) == nil
	}
}

// FuzzVerify feeds arbitrary strings to both verifiers. Neither may panic,
// every refusal must wrap ErrUnauthorized without quoting the token, and a
// token may be accepted only if an independent check finds it signed with
// the verifier's own key and algorithm and carrying sane claims.
//
// Each input is also re-signed with the test secret, keeping its header and
// payload, so that the fuzzer reaches claim validation rather than stopping
// at the signature; the re-signed token is then accepted only if its header
// says HS256 and its claims are valid at the fuzz clock.
func FuzzVerify(f *testing.F) {
	signer, _, _ := keys(f)
	hv, rv := hsVerifier(f), rsVerifier(f)
	hsOK, rsOK := hmacOK(testSecret), rsaOK(&signer.PublicKey)

	valid := hs(f, claims("person-42", with("nbf", t0.Add(-time.Minute).Unix())))
	header, rest, _ := strings.Cut(valid, ".")
	payload, sig, _ := strings.Cut(rest, ".")
	for _, seed := range []string{
		valid,
		rs(f, signer, "k1", claims("person-42")),
		rs(f, signer, nil, claims("person-42")),
		noneToken(f, claims("person-42")),
		b64(`{"alg":"none"}`) + "." + payload + "." + sig,
		b64(`{"alg":"RS256","kid":"k1"}`) + "." + payload + "." + sig,
		b64(`{"alg":"HS256","crit":["b64"],"b64":false}`) + "." + payload + "." + sig,
		b64(`{"alg":"HS256","kid":7}`) + "." + payload + "." + sig,
		header + "." + b64(`{"sub":"p","exp":1e300}`) + "." + sig,
		header + "." + b64(`{"sub":"a b","exp":9999999999}`) + "." + sig,
		header + "." + b64(`{"sub":"p","exp":"x"}`) + "." + sig,
		header + "." + b64(`{"sub":"p","exp":9999999999,"nbf":9999999999}`) + "." + sig,
		header + "." + b64(`{"sub":"p","exp":9999999999,"iat":-1e20,"aud":[1]}`) + "." + sig,
		header + "." + payload + "." + sig[:len(sig)-2],
		header + "." + payload + ".",
		header + "." + payload,
		valid + ".",
		valid + "=",
		strings.ToUpper(valid),
		"",
		"..",
		".",
		"Bearer " + valid,
	} {
		f.Add(seed)
	}

	f.Fuzz(func(t *testing.T, tok string) {
		check := func(name string, v *jwtauth.Verifier, tok string, ok func(input, sig []byte) bool) (jwtauth.Claims, bool) {
			c, err := v.Verify(tok, t0)
			if err != nil {
				if !errors.Is(err, jwtauth.ErrUnauthorized) {
					t.Fatalf("%s: error %q does not wrap ErrUnauthorized", name, err)
				}
				if strings.Contains(tok, ".") && len(tok) >= 16 && strings.Contains(err.Error(), tok) {
					t.Fatalf("%s: error %q quotes the token", name, err)
				}
				return c, false
			}
			if len(tok) > 8<<10 {
				t.Fatalf("%s: accepted a token of %d bytes", name, len(tok))
			}
			if !signedWith(tok, ok) {
				t.Fatalf("%s: accepted a token not signed with its key: %q", name, tok)
			}
			if !personID.MatchString(c.Subject) {
				t.Fatalf("%s: accepted sub %q", name, c.Subject)
			}
			if !t0.Before(c.Expires.Add(30 * time.Second)) {
				t.Fatalf("%s: accepted a token that expired at %v", name, c.Expires)
			}
			return c, true
		}
		check("HS256", hv, tok, hsOK)
		check("RS256", rv, tok, rsOK)

		parts := strings.Split(tok, ".")
		if len(parts) != 3 {
			return
		}
		m := hmac.New(sha256.New, testSecret)
		m.Write([]byte(parts[0] + "." + parts[1]))
		resigned := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
		if _, ok := check("HS256 re-signed", hv, resigned, hsOK); !ok {
			return
		}
		raw, err := base64.RawURLEncoding.Strict().DecodeString(parts[0])
		if err != nil {
			t.Fatalf("accepted a header that is not canonical base64url: %q", parts[0])
		}
		var h map[string]any
		if err := json.Unmarshal(raw, &h); err != nil {
			t.Fatalf("accepted a header that is not a JSON object: %q", raw)
		}
		if h["alg"] != "HS256" {
			t.Fatalf("accepted a header with alg %v", h["alg"])
		}
		if _, ok := h["crit"]; ok {
			t.Fatalf("accepted a header with crit: %q", raw)
		}
		raw, err = base64.RawURLEncoding.Strict().DecodeString(parts[1])
		if err != nil {
			t.Fatalf("accepted a payload that is not canonical base64url: %q", parts[1])
		}
		var c struct {
			Exp *float64 `json:"exp"`
			Nbf *float64 `json:"nbf"`
			Iat *float64 `json:"iat"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			t.Fatalf("accepted a payload whose exp/nbf do not decode: %q", raw)
		}
		if c.Exp == nil {
			t.Fatalf("accepted a payload without exp: %q", raw)
		}
		skewed := float64(t0.Add(30 * time.Second).Unix())
		if c.Nbf != nil && *c.Nbf > skewed {
			t.Fatalf("accepted a payload not valid yet: %q", raw)
		}
		if c.Iat != nil && *c.Iat > skewed {
			t.Fatalf("accepted a payload issued in the future: %q", raw)
		}
		if *c.Exp+30 <= float64(t0.Unix()) {
			t.Fatalf("accepted a payload already expired: %q", raw)
		}
	})
}
