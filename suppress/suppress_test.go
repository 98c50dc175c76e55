package suppress_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/suppress"
)

func TestStore(t *testing.T) {
	srv := redistest.Start(t)
	at := time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)
	clock := func() time.Time { return at }
	impls := map[string]func() suppress.Store{
		"memory": func() suppress.Store { return suppress.NewMemory(clock) },
		"redis": func() suppress.Store {
			if err := srv.FlushAll(); err != nil {
				t.Fatal(err)
			}
			return suppress.NewRedis(srv.Client(), "", clock)
		},
	}
	for name, mk := range impls {
		t.Run(name, func(t *testing.T) {
			s := mk()
			ctx := context.Background()
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(s.Add(ctx, "email", " Ana@Example.COM ", "invalid_address"))
			must(s.Add(ctx, "email", "ana@example.com", "rejected")) // second Add keeps the first
			must(s.Add(ctx, "sms", "+447700900123", "unsubscribed"))
			must(s.Add(ctx, "push", "tok-abcdef123", "token_unregistered"))

			e, ok, err := s.Lookup(ctx, "email", "ANA@example.com")
			must(err)
			if !ok || e.Reason != "invalid_address" || !e.At.Equal(at) || e.Address != "ana@example.com" {
				t.Errorf("lookup email = %+v, %v", e, ok)
			}
			if _, ok, _ := s.Lookup(ctx, "sms", "+447700900124"); ok {
				t.Error("another number is suppressed")
			}
			if _, ok, _ := s.Lookup(ctx, "email", "+447700900123"); ok {
				t.Error("suppression leaked across channels")
			}

			all, err := s.List(ctx, "")
			must(err)
			if len(all) != 3 || all[0].Channel != "email" || all[1].Channel != "push" || all[2].Channel != "sms" {
				t.Errorf("list = %+v", all)
			}
			smsOnly, err := s.List(ctx, "sms")
			must(err)
			if len(smsOnly) != 1 || smsOnly[0].Address != "+447700900123" || smsOnly[0].Reason != "unsubscribed" {
				t.Errorf("list sms = %+v", smsOnly)
			}

			removed, err := s.Remove(ctx, "sms", "+447700900123")
			must(err)
			if !removed {
				t.Error("remove reported nothing removed")
			}
			if removed, _ := s.Remove(ctx, "sms", "+447700900123"); removed {
				t.Error("second remove reported removal")
			}
			if _, ok, _ := s.Lookup(ctx, "sms", "+447700900123"); ok {
				t.Error("still suppressed after remove")
			}

			for _, bad := range [][2]string{{"fax", "x"}, {"email", "  "}} {
				if err := s.Add(ctx, bad[0], bad[1], "x"); !errors.Is(err, suppress.ErrInvalid) {
					t.Errorf("Add(%q, %q) = %v, want ErrInvalid", bad[0], bad[1], err)
				}
			}
			if _, err := s.List(ctx, "fax"); !errors.Is(err, suppress.ErrInvalid) {
				t.Errorf("List(fax) = %v", err)
			}
		})
	}
}

// TestRedisDownIsRetryable: a list that cannot be read holds messages back.
func TestRedisDownIsRetryable(t *testing.T) {
	srv := redistest.Start(t)
	s := suppress.NewRedis(srv.Client(), "", nil)
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err := s.Lookup(ctx, "sms", "+447700900123")
	if err == nil || failure.ClassOf(err) != failure.Retryable {
		t.Fatalf("lookup with Redis down = %v, want a retryable error", err)
	}
}

func TestFeeds(t *testing.T) {
	cases := []struct {
		ch, reason string
		want       bool
	}{
		{"email", "invalid_address", true},
		{"email", "rejected", false},
		{"email", "unavailable", false},
		{"sms", "unsubscribed", true},
		{"sms", "invalid_address", true},
		{"sms", "rejected", false},
		{"push", "token_unregistered", true},
		{"push", "invalid_address", true},
		{"push", "rate_limited", false},
	}
	for _, c := range cases {
		if got := suppress.Feeds(c.ch, c.reason); got != c.want {
			t.Errorf("Feeds(%s, %s) = %v, want %v", c.ch, c.reason, got, c.want)
		}
	}
}

// Concurrent lookups share pipelines, each caller still gets its own
// answer, and a closed list refuses lookups with a retryable error.
func TestRedisLookupsAreCoalesced(t *testing.T) {
	srv := redistest.Start(t)
	s := suppress.NewRedis(srv.Client(), "", nil)
	ctx := context.Background()
	for i := range 50 {
		if err := s.Add(ctx, "email", fmt.Sprintf("gone%d@example.com", i), "invalid_address"); err != nil {
			t.Fatal(err)
		}
	}
	const n = 400
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, found, err := s.Lookup(ctx, "email", fmt.Sprintf("gone%d@example.com", i))
			switch {
			case err != nil:
				errs <- err
			case found != (i < 50):
				errs <- fmt.Errorf("address %d: found %v", i, found)
			case found && (e.Reason != "invalid_address" || e.Address != fmt.Sprintf("gone%d@example.com", i)):
				errs <- fmt.Errorf("address %d: entry %+v", i, e)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if rt := s.RoundTrips(); rt == 0 || rt > n {
		t.Errorf("%d lookups took %d round trips", n, rt)
	} else {
		t.Logf("%d concurrent lookups, %d round trips", n, rt)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Lookup(ctx, "email", "a@example.com"); failure.ClassOf(err) != failure.Retryable {
		t.Errorf("lookup after Close: %v, want a retryable error", err)
	}
	never := suppress.NewRedis(srv.Client(), "", nil)
	if err := never.Close(); err != nil { // never looked up: nothing to stop
		t.Fatal(err)
	}
}
