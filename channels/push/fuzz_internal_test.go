package push

import (
	"slices"
	"testing"

	"github.com/gymhq/herald/failure"
)

// FuzzAnswer feeds FCM error answers of any shape: whatever the body and
// status, the send fails with a retryable or permanent error (never poison,
// never unclassified) whose reason is a known metric label; an UNREGISTERED
// token is always permanent; a body that is not Google's error JSON is
// always retryable.
func FuzzAnswer(f *testing.F) {
	f.Add(404, []byte(`{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}`))
	f.Add(400, []byte(`{"error":{"code":400,"message":"The registration token is not a valid FCM registration token","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"INVALID_ARGUMENT"},{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"message.token"}]}]}}`))
	f.Add(429, []byte(`{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"QUOTA_EXCEEDED"}]}}`))
	f.Add(503, []byte(`<html><body>Service Unavailable</body></html>`))
	f.Add(401, []byte(`{"error":{"code":401,"status":"UNAUTHENTICATED"}}`))
	f.Add(500, []byte(`{"error":null}`))
	f.Add(418, []byte(``))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 100 || status > 599 || status == 200 {
			t.Skip()
		}
		fe, err := answerError(status, "", body)
		if err == nil {
			t.Fatal("a failed send without an error")
		}
		class := failure.ClassOf(err)
		if class != failure.Retryable && class != failure.Permanent {
			t.Fatalf("class %v for HTTP %d %q", class, status, body)
		}
		if !slices.Contains(failure.Reasons, failure.ReasonOf(err)) {
			t.Fatalf("reason %q is not a known label", failure.ReasonOf(err))
		}
		if fe == nil && class != failure.Retryable {
			t.Fatalf("unparsable answer %q classified %v", body, class)
		}
		if fe != nil && fe.ErrorCode == CodeUnregistered && (class != failure.Permanent || failure.ReasonOf(err) != failure.ReasonTokenUnregistered) {
			t.Fatalf("UNREGISTERED classified %v/%s", class, failure.ReasonOf(err))
		}
	})
}

// FuzzCredentials feeds service-account files of any shape: they are
// accepted only with a type, a client email and a parsable private key, and
// an accepted one always has a token URL.
func FuzzCredentials(f *testing.F) {
	f.Add([]byte(`{"type":"service_account","client_email":"a@b.iam.gserviceaccount.com","private_key":"-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n","token_uri":"https://oauth2.googleapis.com/token"}`))
	f.Add([]byte(`{"type":"authorized_user"}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := jwtConfigFromJSON(b, "scope")
		if err != nil {
			return
		}
		if cfg.Email == "" || len(cfg.PrivateKey) == 0 || cfg.TokenURL == "" {
			t.Fatalf("accepted an incomplete service account: %+v", cfg)
		}
	})
}
