package prefs_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/prefs"
)

// storeSuite is the behaviour every Store has, run on each of them.
func storeSuite(t *testing.T, newStore func(t *testing.T) prefs.Store) {
	ctx := context.Background()
	set := embedded(t)

	t.Run("nothing stored", func(t *testing.T) {
		s := newStore(t)
		p, err := s.Get(ctx, "mem_new")
		if err != nil || p == nil || !p.Empty() {
			t.Fatalf("Get = %+v, %v; want empty", p, err)
		}
		m, err := s.Lookup(ctx, []string{"mem_new", "mem_other"})
		if err != nil || len(m) != 0 {
			t.Fatalf("Lookup = %v, %v; want empty", m, err)
		}
	})

	t.Run("change, get, lookup", func(t *testing.T) {
		s := newStore(t)
		p, err := prefs.Change(ctx, s, set, "mem_ana", patch(t, `{"channels":{"sms":false},"categories":{"marketing":{"email":false}},"time_zone":"Europe/Madrid"}`))
		if err != nil {
			t.Fatal(err)
		}
		want := &prefs.Prefs{
			Channels:   map[notification.Channel]bool{"sms": false},
			Categories: map[string]map[notification.Channel]bool{"marketing": {"email": false}},
			Zone:       "Europe/Madrid",
		}
		if !reflect.DeepEqual(p, want) {
			t.Fatalf("Change = %+v, want %+v", p, want)
		}
		// A second change merges into the first.
		if p, err = prefs.Change(ctx, s, set, "mem_ana", patch(t, `{"channels":{"sms":null,"push":false},"quiet_hours":"off"}`)); err != nil {
			t.Fatal(err)
		}
		want.Channels = map[notification.Channel]bool{"push": false}
		want.Quiet = &prefs.QuietHours{Off: true}
		got, err := s.Get(ctx, "mem_ana")
		if err != nil || !reflect.DeepEqual(got, want) || !reflect.DeepEqual(p, want) {
			t.Fatalf("after two changes: Change %+v, Get %+v, %v; want %+v", p, got, err, want)
		}
		m, err := s.Lookup(ctx, []string{"mem_ana", "mem_nobody", "mem_ana", "not a person!"})
		if err != nil || len(m) != 1 || !reflect.DeepEqual(m["mem_ana"], want) {
			t.Fatalf("Lookup = %v, %v", m, err)
		}
		// What a caller gets is its own.
		m["mem_ana"].Channels["email"] = false
		if again, _ := s.Get(ctx, "mem_ana"); again.Channels["email"] {
			t.Fatal("a caller's edit reached the store")
		}
	})

	t.Run("refused changes store nothing", func(t *testing.T) {
		s := newStore(t)
		if _, err := prefs.Change(ctx, s, set, "mem_bo", patch(t, `{"categories":{"marketing":{"email":false}}}`)); err != nil {
			t.Fatal(err)
		}
		for body, want := range map[string]error{
			`{"channels":{"email":false,"sms":false,"push":false,"inapp":false}}`: prefs.ErrRequired,
			`{"categories":{"marketing":{"fax":true}}}`:                           prefs.ErrInvalid,
			`{"categories":{"offers":{"email":true}}}`:                            prefs.ErrInvalid,
		} {
			if _, err := prefs.Change(ctx, s, set, "mem_bo", patch(t, body)); !errors.Is(err, want) {
				t.Errorf("%s: %v, want %v", body, err, want)
			}
		}
		p, _ := s.Get(ctx, "mem_bo")
		if len(p.Channels) != 0 || len(p.Categories) != 1 {
			t.Errorf("a refused change was stored: %+v", p)
		}
		boom := errors.New("boom")
		if _, err := s.Update(ctx, "mem_bo", func(p *prefs.Prefs) error { p.Zone = "UTC"; return boom }); err != boom {
			t.Errorf("Update returned %v, want fn's error as it is", err)
		}
		if p, _ := s.Get(ctx, "mem_bo"); p.Zone != "" {
			t.Error("an aborted update was stored")
		}
	})

	t.Run("invalid person", func(t *testing.T) {
		s := newStore(t)
		for _, person := range []string{"", "-x", "a b", string(make([]byte, 200))} {
			if _, err := s.Get(ctx, person); !errors.Is(err, prefs.ErrInvalid) {
				t.Errorf("Get(%q): %v", person, err)
			}
			if _, err := s.Update(ctx, person, func(*prefs.Prefs) error { return nil }); !errors.Is(err, prefs.ErrInvalid) {
				t.Errorf("Update(%q): %v", person, err)
			}
		}
	})

	t.Run("removing every choice removes the record", func(t *testing.T) {
		s := newStore(t)
		if _, err := prefs.Change(ctx, s, set, "mem_cy", patch(t, `{"channels":{"sms":false}}`)); err != nil {
			t.Fatal(err)
		}
		p, err := prefs.Change(ctx, s, set, "mem_cy", patch(t, `{"channels":{"sms":null}}`))
		if err != nil || !p.Empty() {
			t.Fatalf("Change = %+v, %v", p, err)
		}
		if m, _ := s.Lookup(ctx, []string{"mem_cy"}); len(m) != 0 {
			t.Errorf("an empty record is still looked up: %v", m)
		}
	})

	t.Run("concurrent updates lose nothing", func(t *testing.T) {
		s := newStore(t)
		chs := prefs.Channels()
		cats := []string{"marketing", "reminders", "updates", "staff"}
		var wg sync.WaitGroup
		for _, cat := range cats {
			for _, ch := range chs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					body := fmt.Sprintf(`{"categories":{%q:{%q:false}}}`, cat, ch)
					if _, err := prefs.Change(ctx, s, set, "mem_busy", patch(t, body)); err != nil {
						t.Error(err)
					}
				}()
			}
		}
		wg.Wait()
		p, err := s.Get(ctx, "mem_busy")
		if err != nil {
			t.Fatal(err)
		}
		for _, cat := range cats {
			if len(p.Categories[cat]) != len(chs) {
				t.Errorf("%s: %v; want all %d channels off", cat, p.Categories[cat], len(chs))
			}
		}
	})

	t.Run("STOP and unsubscribe", func(t *testing.T) {
		s := newStore(t)
		if _, err := prefs.Change(ctx, s, set, "mem_di", patch(t, `{"categories":{"reminders":{"sms":true},"marketing":{"sms":true,"email":true}}}`)); err != nil {
			t.Fatal(err)
		}
		p, err := prefs.OptOut(ctx, s, "mem_di", notification.SMS)
		if err != nil {
			t.Fatal(err)
		}
		for _, cat := range []string{"reminders", "marketing", "transactional"} {
			if allow, ok := p.Allows(cat, notification.SMS); allow || !ok {
				t.Errorf("after STOP, %s by sms: %v, %v", cat, allow, ok)
			}
		}
		if allow, _ := p.Allows("marketing", notification.Email); !allow {
			t.Error("STOP changed email")
		}
		if p, err = prefs.Unsubscribe(ctx, s, "mem_di", "marketing", notification.Email); err != nil {
			t.Fatal(err)
		}
		if allow, ok := p.Allows("marketing", notification.Email); allow || !ok {
			t.Errorf("after unsubscribing, marketing by email: %v, %v", allow, ok)
		}
		if allow, ok := p.Allows("updates", notification.Email); allow || ok {
			t.Errorf("unsubscribing from marketing decided updates: %v, %v", allow, ok)
		}
		// Twice is the same as once.
		if again, err := prefs.Unsubscribe(ctx, s, "mem_di", "marketing", notification.Email); err != nil || !reflect.DeepEqual(again, p) {
			t.Errorf("second unsubscribe: %+v, %v", again, err)
		}
	})

	// A STOP that leaves the required category no channel does not lock
	// the person out of unrelated changes (outside tester), while a change
	// that itself switches it off is still refused.
	t.Run("STOP leaves transactional no channel", func(t *testing.T) {
		s := newStore(t)
		if _, err := prefs.Change(ctx, s, set, "mem_s7", patch(t, `{"channels":{"email":false,"push":false,"inapp":false}}`)); err != nil {
			t.Fatal(err)
		}
		if _, err := prefs.OptOut(ctx, s, "mem_s7", notification.SMS); err != nil {
			t.Fatal(err)
		}
		if _, err := prefs.Change(ctx, s, set, "mem_s7", patch(t, `{"categories":{"marketing":{"email":false}}}`)); err != nil {
			t.Fatalf("an unrelated change after STOP: %v", err)
		}
		if _, err := prefs.Change(ctx, s, set, "mem_s8", patch(t, `{"channels":{"email":false,"push":false,"inapp":false,"sms":false}}`)); !errors.Is(err, prefs.ErrRequired) {
			t.Fatalf("switching transactional off: %v, want ErrRequired", err)
		}
	})

	t.Run("lookups at once", func(t *testing.T) {
		s := newStore(t)
		for i := 0; i < 20; i++ {
			if _, err := prefs.OptOut(ctx, s, fmt.Sprint("mem_", i), notification.SMS); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		for i := 0; i < 200; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a, b := fmt.Sprint("mem_", i%20), fmt.Sprint("mem_x", i)
				m, err := s.Lookup(ctx, []string{a, b})
				if err != nil || len(m) != 1 || m[a] == nil || m[a].Channels["sms"] {
					t.Errorf("Lookup(%s, %s) = %v, %v", a, b, m, err)
				}
			}()
		}
		wg.Wait()
	})
}

func TestMemory(t *testing.T) {
	storeSuite(t, func(*testing.T) prefs.Store { return prefs.NewMemory() })
}

func TestRedis(t *testing.T) {
	srv := redistest.Start(t)
	n := 0
	storeSuite(t, func(t *testing.T) prefs.Store {
		n++
		s := prefs.NewRedis(srv.Client(), fmt.Sprintf("t%d:prefs:", n))
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

// TestRedisSpecifics: the key layout, coalescing, a record written by
// hand, an outage, and a closed store.
func TestRedisSpecifics(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	s := prefs.NewRedis(srv.Client(), "")
	t.Cleanup(func() { _ = s.Close() })

	if _, err := prefs.OptOut(ctx, s, "mem_key", notification.SMS); err != nil {
		t.Fatal(err)
	}
	if v, err := srv.Client().Get(ctx, "herald:prefs:{mem_key}").Result(); err != nil || v != `{"channels":{"sms":false}}` {
		t.Errorf("stored %q, %v", v, err)
	}
	if ttl := srv.Client().TTL(ctx, "herald:prefs:{mem_key}").Val(); ttl != -1 {
		t.Errorf("TTL %v: an opt-out must not expire", ttl)
	}

	before := s.RoundTrips()
	var wg sync.WaitGroup
	for i := 0; i < 300; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Lookup(ctx, []string{"mem_key", fmt.Sprint("mem_", i)}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := s.RoundTrips() - before; n >= 300 {
		t.Errorf("%d round trips for 300 lookups: not coalesced", n)
	}

	if err := srv.Client().Set(ctx, "herald:prefs:{mem_bad}", "{not json", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "mem_bad"); !errors.Is(err, prefs.ErrCorrupt) {
		t.Errorf("Get of a corrupt record: %v", err)
	}
	if _, err := s.Lookup(ctx, []string{"mem_key", "mem_bad"}); !errors.Is(err, prefs.ErrCorrupt) {
		t.Errorf("Lookup of a corrupt record: %v", err)
	}
	if _, err := prefs.OptOut(ctx, s, "mem_bad", notification.SMS); !errors.Is(err, prefs.ErrCorrupt) {
		t.Errorf("Update of a corrupt record: %v", err)
	}

	srv.Stop()
	if _, err := s.Lookup(ctx, []string{"mem_key"}); failure.ClassOf(err) != failure.Retryable || failure.ReasonOf(err) != failure.ReasonUnavailable {
		t.Errorf("Lookup during an outage: %v; want retryable unavailable", err)
	}
	if _, err := prefs.OptOut(ctx, s, "mem_key", notification.Email); failure.ReasonOf(err) != failure.ReasonUnavailable {
		t.Errorf("Update during an outage: %v", err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	if _, err := s.Lookup(ctx, []string{"mem_key"}); err == nil {
		t.Error("Lookup after Close succeeded")
	}
}

// TestPlanChoices: the dispatcher gets the people who stored something,
// as templates.Choices, and nobody else.
func TestPlanChoices(t *testing.T) {
	ctx := context.Background()
	s := prefs.NewMemory()
	if _, err := prefs.OptOut(ctx, s, "mem_a", notification.SMS); err != nil {
		t.Fatal(err)
	}
	m, err := prefs.PlanChoices(s)(ctx, []string{"mem_a", "mem_b"})
	if err != nil || len(m) != 1 {
		t.Fatalf("PlanChoices = %v, %v", m, err)
	}
	if allow, ok := m["mem_a"].Allows("reminders", notification.SMS); allow || !ok {
		t.Errorf("mem_a reminders by sms: %v, %v", allow, ok)
	}
	if _, ok := m["mem_b"]; ok {
		t.Error("a person who stored nothing is in the map (a nil *Prefs in an interface is not nil)")
	}
}
