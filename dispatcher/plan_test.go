package dispatcher_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gymhq/herald/dispatcher"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/templates"
)

func planner(t *testing.T, now func() time.Time) *dispatcher.Planner {
	t.Helper()
	s, err := templates.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	return &dispatcher.Planner{Templates: s, Now: now}
}

func readSample(t *testing.T, typ, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "templates", typ, "samples", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPlannerPlans(t *testing.T) {
	now := time.Date(2026, 11, 20, 18, 4, 1, 0, time.UTC)
	p := planner(t, func() time.Time { return now })
	raw := readSample(t, "gym.class.cancelled", "three-attendees.json")
	ns, err := p.Plan(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 9 {
		t.Fatalf("%d notifications, want 9 (3 attendees × email, sms, inapp)", len(ns))
	}
	again, err := p.Plan(raw)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range ns {
		if !n.CreatedAt.Equal(now) {
			t.Errorf("CreatedAt %v, want the injected clock's %v", n.CreatedAt, now)
		}
		if err := n.Validate(); err != nil {
			t.Error(err)
		}
		if again[i].ID != n.ID {
			t.Errorf("notification %d: id %s then %s for the same bytes", i, n.ID, again[i].ID)
		}
	}
}

func TestPlannerDefaultClock(t *testing.T) {
	p := planner(t, nil)
	before := time.Now()
	ns, err := p.Plan(readSample(t, "gym.booking.confirmed", "member-en.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) == 0 || ns[0].CreatedAt.Before(before) {
		t.Fatalf("CreatedAt not stamped from time.Now: %+v", ns)
	}
}

func TestPlannerErrors(t *testing.T) {
	p := planner(t, time.Now)
	confirmed := readSample(t, "gym.booking.confirmed", "member-en.json")

	unknown := bytes.Replace(confirmed, []byte(`"gym.booking.confirmed"`), []byte(`"gym.locker.opened"`), 1)
	ns, err := p.Plan(unknown)
	if !errors.Is(err, dispatcher.ErrUnknownType) || ns != nil {
		t.Errorf("unknown type: %v, %d notifications; want ErrUnknownType", err, len(ns))
	}
	var fe *failure.Error
	if errors.As(err, &fe) {
		t.Errorf("unknown type is classified %v; it must not be poison", fe.Class)
	}
	if !errors.Is(err, templates.ErrUnknownType) {
		t.Error("dispatcher.ErrUnknownType is not templates.ErrUnknownType")
	}

	for _, tc := range []struct {
		name   string
		raw    []byte
		reason failure.Reason
	}{
		{"not json", []byte("not json"), failure.ReasonDecode},
		{"empty", nil, failure.ReasonDecode},
		{"missing member", bytes.Replace(confirmed, []byte(`"member"`), []byte(`"someone"`), 1), failure.ReasonInvalid},
		{"bad specversion", bytes.Replace(confirmed, []byte(`"1.0"`), []byte(`"0.3"`), 1), failure.ReasonInvalid},
	} {
		_, err := p.Plan(tc.raw)
		if failure.ClassOf(err) != failure.Poison || failure.ReasonOf(err) != tc.reason || errors.Is(err, dispatcher.ErrUnknownType) {
			t.Errorf("%s: %v (class %v, reason %v), want poison %s", tc.name, err, failure.ClassOf(err), failure.ReasonOf(err), tc.reason)
		}
	}
}
