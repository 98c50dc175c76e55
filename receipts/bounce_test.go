package receipts_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gymhq/herald/receipts"
)

func TestBounceRefusals(t *testing.T) {
	if _, err := receipts.BounceHandler(receipts.BounceOptions{Store: receipts.NewMemory()}); err == nil {
		t.Error("a bounce endpoint without a token was built")
	}
	h, err := receipts.BounceHandler(receipts.BounceOptions{Token: "t0123456789abcdef", Store: receipts.NewMemory(), MaxBody: 64})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		auth, body string
		want       int
	}{
		{"", "x", http.StatusUnauthorized},
		{"Bearer nope", "x", http.StatusUnauthorized},
		{"Bearer t0123456789abcdef", "Subject: hello\r\n\r\nnot a report\r\n", http.StatusBadRequest},
		{"Bearer t0123456789abcdef", strings.Repeat("x", 100), http.StatusRequestEntityTooLarge},
	} {
		req := httptest.NewRequest(http.MethodPost, receipts.BouncePath, strings.NewReader(tt.body))
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tt.want {
			t.Errorf("%q %q: %d, want %d", tt.auth, tt.body, rec.Code, tt.want)
		}
	}
}
