package receipts_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/receipts"
)

// stores runs f against every Store: memory and a real redis-server.
func stores(t *testing.T, f func(t *testing.T, s receipts.Store)) {
	t.Run("memory", func(t *testing.T) { f(t, receipts.NewMemory()) })
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		f(t, receipts.NewRedis(srv.Client(), 0))
	})
}

var t0 = time.Date(2026, 11, 23, 7, 15, 0, 0, time.UTC)

func accepted(nid, pmid string) receipts.Receipt {
	return receipts.Receipt{NotificationID: nid, Channel: notification.SMS, Provider: receipts.ProviderTwilio, ProviderMessageID: pmid, At: t0}
}

// TestForwardOnly: each step is a status callback in the order given; a
// status moves the receipt only when it ranks above the current one, and the
// first final answer stands.
func TestForwardOnly(t *testing.T) {
	type step struct {
		status      receipts.Status
		code        string
		wantChanged bool
		want        receipts.Status
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"in order", []step{{receipts.StatusSent, "", true, receipts.StatusSent}, {receipts.StatusDelivered, "", true, receipts.StatusDelivered}}},
		{"late sent after delivered", []step{{receipts.StatusDelivered, "", true, receipts.StatusDelivered}, {receipts.StatusSent, "", false, receipts.StatusDelivered}}},
		{"accepted again", []step{{receipts.StatusSent, "", true, receipts.StatusSent}, {receipts.StatusAccepted, "", false, receipts.StatusSent}}},
		{"repeated", []step{{receipts.StatusSent, "", true, receipts.StatusSent}, {receipts.StatusSent, "", false, receipts.StatusSent}}},
		{"first final stands", []step{{receipts.StatusUndelivered, "30003", true, receipts.StatusUndelivered}, {receipts.StatusDelivered, "", false, receipts.StatusUndelivered}, {receipts.StatusFailed, "30008", false, receipts.StatusUndelivered}}},
		{"skip sent", []step{{receipts.StatusFailed, "30005", true, receipts.StatusFailed}}},
	}
	stores(t, func(t *testing.T, s receipts.Store) {
		ctx := context.Background()
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				pmid := "SM-" + tt.name
				if _, err := s.Accepted(ctx, accepted("ntf-"+tt.name, pmid)); err != nil {
					t.Fatal(err)
				}
				var lastCode string
				for i, st := range tt.steps {
					at := t0.Add(time.Duration(i+1) * time.Second)
					r, changed, err := s.Record(ctx, pmid, st.status, st.code, at)
					if err != nil {
						t.Fatal(err)
					}
					if changed != st.wantChanged || r.Status != st.want {
						t.Fatalf("step %d %s: changed %v status %s, want %v %s", i, st.status, changed, r.Status, st.wantChanged, st.want)
					}
					if changed {
						lastCode = st.code
						if !r.At.Equal(at) {
							t.Errorf("step %d: At %v, want %v", i, r.At, at)
						}
					}
					if r.Code != lastCode || r.NotificationID != "ntf-"+tt.name || r.Channel != notification.SMS || r.Provider != receipts.ProviderTwilio {
						t.Errorf("step %d: receipt %+v", i, r)
					}
				}
				got, ok, err := s.Get(ctx, "ntf-"+tt.name)
				if err != nil || !ok || got.Status != tt.steps[len(tt.steps)-1].want || got.ProviderMessageID != pmid {
					t.Errorf("Get: %+v %v %v", got, ok, err)
				}
			})
		}
	})
}

// TestCallbackBeforeAccepted: Twilio may post "sent" (even "delivered")
// before the worker has recorded the acceptance; the status is kept without
// a notification id, and Accepted adds the id without moving it back.
func TestCallbackBeforeAccepted(t *testing.T) {
	stores(t, func(t *testing.T, s receipts.Store) {
		ctx := context.Background()
		r, changed, err := s.Record(ctx, "SM1", receipts.StatusDelivered, "", t0.Add(time.Second))
		if err != nil || !changed || r.NotificationID != "" || r.Status != receipts.StatusDelivered {
			t.Fatalf("Record before Accepted: %+v %v %v", r, changed, err)
		}
		if _, ok, _ := s.Get(ctx, "ntf1"); ok {
			t.Fatal("Get found a notification not accepted yet")
		}
		r, err = s.Accepted(ctx, accepted("ntf1", "SM1"))
		if err != nil || r.Status != receipts.StatusDelivered || r.NotificationID != "ntf1" || !r.At.Equal(t0.Add(time.Second)) {
			t.Fatalf("Accepted after a callback: %+v %v", r, err)
		}
		for _, get := range []func() (receipts.Receipt, bool, error){
			func() (receipts.Receipt, bool, error) { return s.Get(ctx, "ntf1") },
			func() (receipts.Receipt, bool, error) { return s.Lookup(ctx, "SM1") },
		} {
			if r, ok, err := get(); err != nil || !ok || r.Status != receipts.StatusDelivered || r.NotificationID != "ntf1" || r.Channel != notification.SMS {
				t.Errorf("read back: %+v %v %v", r, ok, err)
			}
		}
	})
}

// TestAcceptedTwice: a retried Accepted keeps what callbacks recorded, and
// a notification sent again (another provider message) points at the new
// one.
func TestAcceptedTwice(t *testing.T) {
	stores(t, func(t *testing.T, s receipts.Store) {
		ctx := context.Background()
		if _, err := s.Accepted(ctx, accepted("ntf1", "SM1")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Record(ctx, "SM1", receipts.StatusSent, "", t0); err != nil {
			t.Fatal(err)
		}
		if r, err := s.Accepted(ctx, accepted("ntf1", "SM1")); err != nil || r.Status != receipts.StatusSent {
			t.Fatalf("retried Accepted: %+v %v", r, err)
		}
		if _, err := s.Accepted(ctx, accepted("ntf1", "SM2")); err != nil {
			t.Fatal(err)
		}
		if r, ok, err := s.Get(ctx, "ntf1"); err != nil || !ok || r.ProviderMessageID != "SM2" || r.Status != receipts.StatusAccepted {
			t.Errorf("Get after a second provider message: %+v %v %v", r, ok, err)
		}
		if r, ok, err := s.Lookup(ctx, "SM1"); err != nil || !ok || r.Status != receipts.StatusSent {
			t.Errorf("the first provider message: %+v %v %v", r, ok, err)
		}
	})
}

func TestDetailFromCodeTable(t *testing.T) {
	stores(t, func(t *testing.T, s receipts.Store) {
		ctx := context.Background()
		if _, err := s.Accepted(ctx, accepted("ntf1", "SM1")); err != nil {
			t.Fatal(err)
		}
		r, _, err := s.Record(ctx, "SM1", receipts.StatusUndelivered, "30005", t0)
		if err != nil || r.Detail != "unknown destination handset" {
			t.Fatalf("Record: %+v %v", r, err)
		}
		if r, _, _ := s.Get(ctx, "ntf1"); r.Detail != "unknown destination handset" {
			t.Errorf("Get: Detail %q", r.Detail)
		}
	})
}

func TestInvalidArguments(t *testing.T) {
	stores(t, func(t *testing.T, s receipts.Store) {
		ctx := context.Background()
		_, _, err1 := s.Record(ctx, "SM1", "bogus", "", t0)
		_, _, err2 := s.Record(ctx, "", receipts.StatusSent, "", t0)
		_, err3 := s.Accepted(ctx, receipts.Receipt{ProviderMessageID: "SM1"})
		for i, err := range []error{err1, err2, err3} {
			if !errors.Is(err, receipts.ErrInvalid) || failure.ClassOf(err) != failure.Permanent {
				t.Errorf("call %d: %v, want a permanent ErrInvalid", i, err)
			}
		}
		if _, ok, err := s.Lookup(ctx, "SM-none"); ok || err != nil {
			t.Errorf("Lookup of nothing: %v %v", ok, err)
		}
	})
}

// TestRedisTTL: both keys expire after the TTL, counted from acceptance; a
// callback does not extend them, and one that creates the receipt sets it.
func TestRedisTTL(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client()
	s := receipts.NewRedis(c, time.Hour)
	ctx := context.Background()
	if _, _, err := s.Record(ctx, "SM0", receipts.StatusSent, "", t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Accepted(ctx, accepted("ntf1", "SM1")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Record(ctx, "SM1", receipts.StatusSent, "", t0); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{receipts.ReceiptKey("SM0"), receipts.ReceiptKey("SM1"), receipts.NotificationKey("ntf1")} {
		ttl, err := c.PTTL(ctx, k).Result()
		if err != nil || ttl <= 59*time.Minute || ttl > time.Hour {
			t.Errorf("PTTL %s = %v %v, want about an hour", k, ttl, err)
		}
	}
	def := receipts.NewRedis(c, 0)
	if _, err := def.Accepted(ctx, accepted("ntf2", "SM2")); err != nil {
		t.Fatal(err)
	}
	if ttl := c.PTTL(ctx, receipts.ReceiptKey("SM2")).Val(); ttl <= receipts.DefaultTTL-time.Minute {
		t.Errorf("default TTL %v, want %v", ttl, receipts.DefaultTTL)
	}
}

// TestRedisDown: errors are retryable.
func TestRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	s := receipts.NewRedis(srv.Client(), 0)
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err := s.Record(ctx, "SM1", receipts.StatusSent, "", t0)
	if err == nil || !failure.IsRetryable(err) {
		t.Errorf("Record on a stopped Redis: %v, want a retryable error", err)
	}
}
