package twiliofake_test

import (
	"net/url"
	"testing"
)

func TestFailRatio(t *testing.T) {
	f, outbox, srv := newServer(t)
	f.FailRatio(0.25, 503, 0)
	ok := url.Values{"To": {"+447700900123"}, "From": {"+441234567890"}, "Body": {"hi"}}
	failed := 0
	for range 20 {
		status, body := post(t, srv, account, token, ok)
		switch status {
		case 201:
		case 503:
			failed++
			if body["code"] == nil || body["status"] != float64(503) {
				t.Errorf("503 without Twilio's error shape: %v", body)
			}
		default:
			t.Errorf("status %d: %v", status, body)
		}
	}
	if failed != 5 || outbox.Len() != 15 {
		t.Errorf("failed %d of 20, delivered %d; want 5 and 15", failed, outbox.Len())
	}
	f.FailRatio(0, 0, 0)
	if status, _ := post(t, srv, account, token, ok); status != 201 {
		t.Errorf("after FailRatio(0): %d", status)
	}
}
