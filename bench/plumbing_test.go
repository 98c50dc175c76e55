package bench

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gymhq/herald/dispatcher"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/templates"
)

// TestNotificationFront: the plumbing floor's stand-in workers read a
// notification's id, channel and address from the front of its binary form
// as the codec wrote them, and refuse what is not that form.
func TestNotificationFront(t *testing.T) {
	n := &notification.Notification{
		ID: "n-1", EventID: "e-1", EventType: "class.cancelled", Template: "class-cancelled", Channel: notification.SMS,
		Locale: "en", RecipientID: "m-1", To: "+15550100", Data: notification.DataOf(map[string]string{"class_name": "Spin"}),
		Priority: notification.High, CreatedAt: time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC),
	}
	b, err := notification.Encode(n)
	if err != nil {
		t.Fatal(err)
	}
	id, ch, to, ok := notificationFront(b)
	if !ok || id != n.ID || ch != string(n.Channel) || to != n.To {
		t.Fatalf("front of the binary form: %q %q %q %v", id, ch, to, ok)
	}
	json, err := notification.JSON(n)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{nil, {0x01}, b[:20], json} {
		if _, _, _, ok := notificationFront(bad); ok {
			t.Errorf("read a front from %q", bad)
		}
	}
}

// TestLatestHalfPastMidnight: the events' instant is never ahead of the
// clock and under a day behind it.
func TestLatestHalfPastMidnight(t *testing.T) {
	day := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct{ now, want time.Time }{
		{day.Add(10 * time.Minute), day.Add(-24*time.Hour + 30*time.Minute)},
		{day.Add(30 * time.Minute), day.Add(30 * time.Minute)},
		{day.Add(23 * time.Hour), day.Add(30 * time.Minute)},
		{time.Date(2026, 12, 6, 1, 0, 0, 0, time.FixedZone("x", 3*3600)), day.Add(-24*time.Hour + 30*time.Minute)},
	} {
		if got := latestHalfPastMidnight(c.now); !got.Equal(c.want) {
			t.Errorf("latestHalfPastMidnight(%s) = %s, want %s", c.now, got, c.want)
		}
	}
}

// TestPlumbingPlanStopsWhenCancelled: an interrupt during the floor's
// planning (a second or two for the pipeline's 20,000 events) ends it
// without waiting for the rest (an outside tester's Ctrl-C there took
// 1.1–2.0 s to exit, 0.07–0.14 s anywhere else).
func TestPlumbingPlanStopsWhenCancelled(t *testing.T) {
	tpl, err := templates.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	values := events(2000, "cancel")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if pp, err := newPlumbingPlan(ctx, tpl, values); !errors.Is(err, context.Canceled) {
		if pp != nil {
			pp.close()
		}
		t.Fatalf("planning after cancel: %v, want context.Canceled", err)
	}
	pp, err := newPlumbingPlan(context.Background(), tpl, values)
	if err != nil {
		t.Fatal(err)
	}
	defer pp.close()
	if len(pp.ids) == 0 || len(pp.events) != len(values)+1 {
		t.Fatalf("plan of %d events: %d notifications, %d event bounds", len(values), len(pp.ids), len(pp.events))
	}
	for i, v := range values[:50] {
		ms, _ := pp.messages(v, time.Now())
		if got := pp.events[i+1] - pp.events[i]; len(ms) != got {
			t.Fatalf("event %d: %d messages, %d records", i, len(ms), got)
		}
	}
}

// TestPlumbingPlanLooksUpThePlannersPeople: the stand-in dispatcher looks
// up, for each event, the preferences of exactly the people herald's
// planner asks for.
func TestPlumbingPlanLooksUpThePlannersPeople(t *testing.T) {
	tpl, err := templates.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	values := events(200, "people")
	pp, err := newPlumbingPlan(context.Background(), tpl, values)
	if err != nil {
		t.Fatal(err)
	}
	defer pp.close()
	p := newPlanner(tpl, nil)
	var asked []string
	p.Choices = func(_ context.Context, ids []string) (map[string]templates.Choices, error) {
		asked = append(asked, ids...)
		return nil, nil
	}
	withPeople := 0
	for i, v := range values {
		asked = nil
		if _, err := p.PlanEvent(context.Background(), v); err != nil && !errors.Is(err, dispatcher.ErrUnknownType) {
			t.Fatal(err)
		}
		_, people := pp.messages(v, time.Now())
		if !slices.Equal(people, asked) {
			t.Fatalf("event %d: the stand-in looks up %v, the planner asks for %v", i, people, asked)
		}
		if len(people) > 0 {
			withPeople++
		}
	}
	if withPeople == 0 {
		t.Fatalf("none of %d events looks anyone up", len(values))
	}
}
