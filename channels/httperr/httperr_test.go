package httperr_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gymhq/herald/channels/httperr"
	"github.com/gymhq/herald/failure"
)

func TestClassify(t *testing.T) {
	cause := errors.New("provider said no")
	tests := []struct {
		status     int
		retryAfter string
		class      failure.Class
		reason     failure.Reason
		wait       time.Duration
	}{
		{429, "", failure.Retryable, failure.ReasonRateLimited, 0},
		{429, "30", failure.Retryable, failure.ReasonRateLimited, 30 * time.Second},
		{503, "7", failure.Retryable, failure.ReasonUnavailable, 7 * time.Second},
		{500, "", failure.Retryable, failure.ReasonUnavailable, 0},
		{502, "", failure.Retryable, failure.ReasonUnavailable, 0},
		{408, "", failure.Retryable, failure.ReasonUnavailable, 0},
		{401, "", failure.Retryable, failure.ReasonAuth, 0},
		{403, "", failure.Retryable, failure.ReasonAuth, 0},
		{400, "", failure.Permanent, failure.ReasonRejected, 0},
		{404, "", failure.Permanent, failure.ReasonRejected, 0},
		{413, "", failure.Permanent, failure.ReasonRejected, 0},
		{302, "", failure.Retryable, failure.ReasonUnavailable, 0},
		{200, "", failure.Retryable, failure.ReasonUnavailable, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d-%s", tt.status, tt.retryAfter), func(t *testing.T) {
			err := httperr.Classify(tt.status, tt.retryAfter, cause)
			if got := failure.ClassOf(err); got != tt.class {
				t.Errorf("class = %v, want %v", got, tt.class)
			}
			if got := failure.ReasonOf(err); got != tt.reason {
				t.Errorf("reason = %v, want %v", got, tt.reason)
			}
			if !errors.Is(err, cause) {
				t.Errorf("%v does not wrap the cause", err)
			}
			if st, ok := httperr.Status(err); !ok || st != tt.status {
				t.Errorf("Status = %d, %v", st, ok)
			}
			wait, ok := httperr.RetryAfter(err)
			if wait != tt.wait || ok != (tt.wait > 0) {
				t.Errorf("RetryAfter = %v, %v; want %v", wait, ok, tt.wait)
			}
		})
	}
}

func TestUnparsed(t *testing.T) {
	tests := []struct {
		status int
		class  failure.Class
		reason failure.Reason
	}{
		{400, failure.Retryable, failure.ReasonUnavailable},
		{404, failure.Retryable, failure.ReasonUnavailable},
		{429, failure.Retryable, failure.ReasonRateLimited},
		{401, failure.Retryable, failure.ReasonAuth},
		{502, failure.Retryable, failure.ReasonUnavailable},
		// A success the caller cannot read may have sent the message:
		// sending it again could deliver it twice.
		{200, failure.Permanent, failure.ReasonRejected},
		{201, failure.Permanent, failure.ReasonRejected},
		{204, failure.Permanent, failure.ReasonRejected},
		{302, failure.Retryable, failure.ReasonUnavailable},
	}
	for _, tt := range tests {
		err := httperr.Unparsed(tt.status, "", errors.New("invalid character '<'"))
		if failure.ClassOf(err) != tt.class || failure.ReasonOf(err) != tt.reason {
			t.Errorf("Unparsed(%d) = %v, want %v/%v", tt.status, err, tt.class, tt.reason)
		}
	}
}

func TestTransport(t *testing.T) {
	classified := failure.Perm(failure.ReasonRejected, errors.New("x"))
	tests := []struct {
		name   string
		err    error
		reason failure.Reason
	}{
		{"ctx deadline", context.DeadlineExceeded, failure.ReasonTimeout},
		{"wrapped deadline", fmt.Errorf("post: %w", context.DeadlineExceeded), failure.ReasonTimeout},
		{"net timeout", &net.OpError{Op: "dial", Err: timeoutErr{}}, failure.ReasonTimeout},
		{"refused", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, failure.ReasonNetwork},
		{"eof", io.ErrUnexpectedEOF, failure.ReasonNetwork},
		{"canceled", context.Canceled, failure.ReasonNetwork},
		{"classified", classified, failure.ReasonRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := httperr.Transport(tt.err)
			if got := failure.ReasonOf(err); got != tt.reason {
				t.Errorf("reason = %v, want %v", got, tt.reason)
			}
			if tt.reason != failure.ReasonRejected && !failure.IsRetryable(err) {
				t.Errorf("%v is not retryable", err)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("%v does not wrap %v", err, tt.err)
			}
		})
	}
	if httperr.Transport(nil) != nil {
		t.Error("Transport(nil) != nil")
	}
}

// TestTransportRealClient checks the classification of what net/http really
// returns, not of errors built by hand.
func TestTransportRealClient(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-block
	}))
	defer srv.Close()
	defer close(block)

	t.Run("client timeout", func(t *testing.T) {
		c := &http.Client{Timeout: 20 * time.Millisecond}
		_, err := c.Get(srv.URL)
		if got := failure.ReasonOf(httperr.Transport(err)); got != failure.ReasonTimeout {
			t.Errorf("reason = %v for %v", got, err)
		}
	})
	t.Run("context deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		_, err := http.DefaultClient.Do(req)
		if got := failure.ReasonOf(httperr.Transport(err)); got != failure.ReasonTimeout {
			t.Errorf("reason = %v for %v", got, err)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		_, err = http.Get("http://" + addr)
		if got := failure.ReasonOf(httperr.Transport(err)); got != failure.ReasonNetwork {
			t.Errorf("reason = %v for %v", got, err)
		}
	})
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"120", 2 * time.Minute, true},
		{" 5 ", 5 * time.Second, true},
		{"-1", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{"99999999999999999999", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
	}
	for _, tt := range tests {
		got, ok := httperr.ParseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }
