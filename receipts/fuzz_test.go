package receipts_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gymhq/herald/receipts"
	"github.com/gymhq/herald/sinks/twiliofake"
	"github.com/gymhq/herald/suppress"
)

// FuzzTwilioHandler feeds the handler arbitrary bodies, content types and
// queries, signed or not. It must never panic, answer only the documented
// statuses, never let an unsigned request touch the store or the
// suppression list, and store every signed callback it answers 200 with a
// tracked status.
func FuzzTwilioHandler(f *testing.F) {
	f.Add([]byte(callback("SM1", "delivered", "").Encode()), "application/x-www-form-urlencoded", true, "")
	f.Add([]byte(callback("SM1", "undelivered", "30005").Encode()), "application/x-www-form-urlencoded", true, "a=b")
	f.Add([]byte(callback("SM1", "failed", "21610").Encode()), "application/x-www-form-urlencoded; charset=utf-8", false, "")
	f.Add([]byte("MessageSid=SM1&MessageSid=SM2&MessageStatus=sent"), "application/x-www-form-urlencoded", true, "")
	f.Add([]byte("MessageSid=%zz"), "application/x-www-form-urlencoded", true, "")
	f.Add([]byte(`{"MessageSid":"SM1"}`), "application/json", true, "")
	f.Add([]byte("MessageSid=+&MessageStatus=sent&ErrorCode=-1"), "", true, "%zz")
	f.Fuzz(func(t *testing.T, body []byte, contentType string, sign bool, query string) {
		store, supp := receipts.NewMemory(), suppress.NewMemory(nil)
		h, err := receipts.TwilioHandler(receipts.TwilioOptions{
			PublicURL: publicURL, AuthTokens: []string{newToken}, Store: store, Suppressor: supp,
			Metrics: receipts.NewMetrics(prometheus.NewRegistry()), MaxBody: 4096,
		})
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodPost, "/v1/receipts/twilio", strings.NewReader(string(body)))
		if q, err := url.ParseQuery(query); err == nil && query != "" {
			req.URL.RawQuery = q.Encode()
		}
		req.Header.Set("Content-Type", contentType)
		form, formErr := url.ParseQuery(string(body))
		if sign {
			signed := publicURL
			if req.URL.RawQuery != "" {
				signed += "?" + req.URL.RawQuery
			}
			req.Header.Set("X-Twilio-Signature", twiliofake.Signature(newToken, signed, form))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusForbidden, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d", rec.Code)
		}
		ctx := context.Background()
		entries, _ := supp.List(ctx, "")
		if !sign {
			if rec.Code == http.StatusOK || len(entries) != 0 {
				t.Fatalf("unsigned request answered %d, suppressed %d", rec.Code, len(entries))
			}
			return
		}
		if rec.Code != http.StatusOK || formErr != nil {
			return
		}
		sid := strings.TrimSpace(form.Get("MessageSid"))
		if sid == "" {
			sid = strings.TrimSpace(form.Get("SmsSid"))
		}
		if _, ok, _ := store.Lookup(ctx, sid); !ok {
			status := strings.TrimSpace(form.Get("MessageStatus"))
			if status == "" {
				status = strings.TrimSpace(form.Get("SmsStatus"))
			}
			switch status {
			case "queued", "sent", "delivered", "undelivered", "failed":
				t.Fatalf("answered 200 to a %q callback for %q without storing it", form.Get("MessageStatus"), sid)
			}
		}
	})
}
