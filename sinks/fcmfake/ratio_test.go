package fcmfake_test

import (
	"strings"
	"testing"
)

func TestFailRatio(t *testing.T) {
	s := newServer(t)
	tok := s.accessToken(t)
	s.fake.FailRatio(0.1, 503, "UNAVAILABLE")
	failed := 0
	for range 30 {
		status, body := s.send(t, "herald-dev", tok, `{"message":{"token":"good-token-1"}}`)
		switch status {
		case 200:
		case 503:
			failed++
			if !strings.Contains(body, `"errorCode":"UNAVAILABLE"`) {
				t.Errorf("503 without FCM's error shape: %s", body)
			}
		default:
			t.Errorf("status %d: %s", status, body)
		}
	}
	if failed != 3 || s.outbox.Len() != 27 {
		t.Errorf("failed %d of 30, delivered %d; want 3 and 27", failed, s.outbox.Len())
	}
}
