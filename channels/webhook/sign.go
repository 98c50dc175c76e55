// Package webhook is herald's webhook channel: an HTTP POST of a JSON
// payload to each endpoint subscribed to an event type, signed as the
// Standard Webhooks specification says, so that receivers verify it with
// any of its libraries.
//
// A delivery is
//
//	POST <subscription url>
//	webhook-id: <notification id>            (the same on every retry: receivers deduplicate on it)
//	webhook-timestamp: <unix seconds>         (when this attempt was signed)
//	webhook-signature: v1,<base64 HMAC-SHA256> [v1,<…> …]   (one per secret during a rotation)
//	content-type: application/json
//
//	{"type": "<event type>", "timestamp": "<event time, RFC 3339>", "data": {…}}
//
// where data is the rule's rendered webhook.<locale>.json template, a JSON
// object. The signature is over "<webhook-id>.<webhook-timestamp>.<body>"
// with the secret's bytes (a "whsec_" prefix and base64).
//
// Answers: any 2xx is delivered; 410 Gone is permanent (endpoint_gone) and
// suppresses the subscription, as a dead address is; 429, 408, 5xx, 401/403
// (our secret refused: configuration, not the message), timeouts and
// network errors are retryable; a redirect is never followed and is
// permanent, as is any other 4xx. Endpoints that resolve to loopback,
// link-local, private, CGNAT, multicast or unspecified addresses are refused
// at dial time — after DNS, so a name that later resolves inward is refused
// too — unless HERALD_WEBHOOK_ALLOW_PRIVATE_NETWORKS=true.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts every secret as Standard Webhooks writes them.
const SecretPrefix = "whsec_"

// ParseSecret decodes a "whsec_<base64>" secret into the HMAC key. The
// key must be 24 to 64 bytes, as the specification recommends.
func ParseSecret(s string) ([]byte, error) {
	b64, ok := strings.CutPrefix(strings.TrimSpace(s), SecretPrefix)
	if !ok {
		return nil, errors.New("a secret starts with " + SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("secret is not %s followed by base64", SecretPrefix)
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("secret key is %d bytes; want 24 to 64", len(key))
	}
	return key, nil
}

// Sign returns the webhook-signature header value for a message: one
// "v1,<signature>" per key, space-separated.
func Sign(id string, ts time.Time, body []byte, keys [][]byte) string {
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("v1,")
		b.WriteString(signature(k, id, ts.Unix(), body))
	}
	return b.String()
}

func signature(key []byte, id string, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(ts, 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Errors of Verify.
var (
	ErrNoSignature  = errors.New("webhook: missing webhook-id, webhook-timestamp or webhook-signature")
	ErrBadTimestamp = errors.New("webhook: timestamp is not unix seconds or is outside the tolerance")
	ErrSignature    = errors.New("webhook: no signature matches")
)

// Verify checks a received message as a receiver must: the timestamp within
// tolerance of now, and one of the v1 signatures made with one of keys.
func Verify(h http.Header, body []byte, keys [][]byte, tolerance time.Duration, now time.Time) error {
	id, tsRaw, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || tsRaw == "" || sigs == "" {
		return ErrNoSignature
	}
	ts, err := strconv.ParseInt(tsRaw, 10, 64)
	if err != nil {
		return ErrBadTimestamp
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return ErrBadTimestamp
	}
	for _, k := range keys {
		want := signature(k, id, ts, body)
		for _, s := range strings.Fields(sigs) {
			v, sig, ok := strings.Cut(s, ",")
			if ok && v == "v1" && hmac.Equal([]byte(sig), []byte(want)) {
				return nil
			}
		}
	}
	return ErrSignature
}
