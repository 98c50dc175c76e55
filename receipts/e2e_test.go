package receipts_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/channels/sms"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/receipts"
	"github.com/gymhq/herald/sinks"
	"github.com/gymhq/herald/sinks/twiliofake"
	"github.com/gymhq/herald/suppress"
)

// TestTwilioEndToEnd: the SMS channel's real twilio-go client sends through
// the Twilio fake with a StatusCallback; the fake posts signed callbacks to
// the handler mounted on an HTTP server; receipts land in a real
// redis-server joined to their notifications, addresses the code table
// names are suppressed in the same Redis, and the undelivered rate follows.
func TestTwilioEndToEnd(t *testing.T) {
	const (
		accountSID = "AC0123456789abcdef0123456789abcdef"
		authToken  = "s3cr3tT0ken0123456789abcdef01234"
	)
	srv := redistest.Start(t)
	store := receipts.NewRedis(srv.Client(), 0)
	supp := suppress.NewRedis(srv.Client(), "", nil)
	t.Cleanup(func() { _ = supp.Close() })
	metrics := receipts.NewMetrics(prometheus.NewRegistry())

	var mu sync.Mutex
	var rates []float64
	rate := receipts.NewUndeliveredRate(time.Hour, func(provider string, r float64, finals int) {
		mu.Lock()
		rates = append(rates, r)
		mu.Unlock()
	})

	mux := http.NewServeMux()
	cbSrv := httptest.NewServer(mux)
	t.Cleanup(cbSrv.Close)
	h, err := receipts.TwilioHandler(receipts.TwilioOptions{
		PublicURL:  cbSrv.URL + receipts.TwilioPath,
		AuthTokens: []string{authToken},
		Store:      store,
		Suppressor: supp,
		Metrics:    metrics,
		OnOutcome:  rate.Observe,
		Logger:     zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("POST "+receipts.TwilioPath, h)

	fake := twiliofake.New(sinks.NewOutbox(100), twiliofake.Options{AccountSID: accountSID, AuthToken: authToken, StatusCallbacks: true})
	api := httptest.NewServer(fake)
	t.Cleanup(api.Close)
	sender, err := sms.New(sms.Config{AccountSID: accountSID, AuthToken: authToken, From: "+441234567890", APIURL: api.URL, StatusCallback: cbSrv.URL + receipts.TwilioPath})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sender.Close() })

	tests := []struct {
		to         string
		status     string
		code       int
		want       receipts.Status
		suppressAs string
	}{
		{"+447700900123", "", 0, receipts.StatusDelivered, ""},
		{"+447700900555", "undelivered", 30005, receipts.StatusUndelivered, "invalid_address"},
		{"+447700900666", "failed", 21610, receipts.StatusFailed, "unsubscribed"},
		{"+447700900777", "undelivered", 30003, receipts.StatusUndelivered, ""},
	}
	ctx := context.Background()
	nids := make([]string, len(tests))
	for i, tt := range tests {
		fake.DeliveryOutcome(tt.to, tt.status, tt.code)
		nid := notification.NewID("evt1", "tmpl", notification.SMS, "member"+tt.to, tt.to)
		rcpt, err := sender.Send(ctx, &channels.Message{NotificationID: nid, Channel: notification.SMS, To: tt.to, Text: "hi"})
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		// What the worker does after the provider accepted the message.
		if _, err := store.Accepted(ctx, receipts.Receipt{NotificationID: nid, Channel: notification.SMS, Provider: receipts.ProviderTwilio, ProviderMessageID: rcpt.ProviderMessageID, At: time.Now()}); err != nil {
			t.Fatal(err)
		}
		nids[i] = nid
	}
	fake.WaitCallbacks()
	for _, c := range fake.Callbacks() {
		if c.HTTPStatus != http.StatusOK {
			t.Errorf("callback %+v answered %d", c, c.HTTPStatus)
		}
	}
	if n := len(fake.Callbacks()); n != 2*len(tests) {
		t.Errorf("%d callbacks posted, want %d", n, 2*len(tests))
	}
	for i, tt := range tests {
		nid, to := nids[i], tt.to
		r, ok, err := store.Get(ctx, nid)
		if err != nil || !ok || r.Status != tt.want || r.NotificationID != nid || r.Provider != receipts.ProviderTwilio {
			t.Errorf("%s: receipt %+v %v %v, want %s", to, r, ok, err, tt.want)
		}
		entry, suppressed, err := supp.Lookup(ctx, "sms", to)
		if err != nil || suppressed != (tt.suppressAs != "") || entry.Reason != tt.suppressAs {
			t.Errorf("%s: suppressed %v as %q (%v), want %q", to, suppressed, entry.Reason, err, tt.suppressAs)
		}
	}
	if r, finals := rate.Rate(receipts.ProviderTwilio, time.Now()); finals != 4 || r != 0.75 {
		t.Errorf("undelivered rate %v over %d, want 0.75 over 4", r, finals)
	}
	mu.Lock()
	if len(rates) != 4 {
		t.Errorf("rate callback called %d times, want 4", len(rates))
	}
	mu.Unlock()
	if n := testutil.ToFloat64(metrics.Receipts.WithLabelValues("sms", "twilio", "delivered")); n != 1 {
		t.Errorf("delivered receipts counted %v", n)
	}
	if n := testutil.ToFloat64(metrics.Receipts.WithLabelValues("sms", "twilio", "sent")); n != 4 {
		t.Errorf("sent receipts counted %v", n)
	}
}
