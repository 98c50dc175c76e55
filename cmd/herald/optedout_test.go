package main

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/prefs"
	"github.com/gymhq/herald/templates"
)

// The fleet's optedOut reads a person's stored preferences as they are
// now: their choice for the category on the channel, else for the channel;
// nothing stored (or a choice that allows it) is not an opt-out, and a
// notification from before categories counts as transactional.
func TestFleetOptedOut(t *testing.T) {
	set, err := templates.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{cfg: &config.Config{}, metrics: obs.NewMetrics(), log: zap.NewNop()}
	store := f.setupPreferences(nil)
	ctx := context.Background()
	patch, err := prefs.DecodePatch([]byte(`{"categories":{"reminders":{"push":false}},"channels":{"sms":false}}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prefs.Change(ctx, store, set, "mem_o", patch); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		person, category string
		ch               notification.Channel
		want             bool
	}{
		{"mem_o", "reminders", notification.Push, true},
		{"mem_o", "reminders", notification.Email, false},
		{"mem_o", "updates", notification.SMS, true}, // the channel's choice
		{"mem_o", "", notification.Push, false},      // transactional, allowed
		{"mem_other", "reminders", notification.Push, false},
	} {
		got, err := f.optedOut(ctx, &notification.Notification{RecipientID: tc.person, Category: tc.category, Channel: tc.ch})
		if err != nil || got != tc.want {
			t.Errorf("%s %s/%s: %v %v, want %v", tc.person, tc.category, tc.ch, got, err, tc.want)
		}
	}
}

// The fleet's quietEnd, which a channel worker asks before holding a
// message back for its cap, reads the person's stored quiet hours and
// the serving template tree's: an outside tester's quiet hours
// 15:16-15:27, set through the preferences, were ignored by a release at
// 15:17.
func TestFleetQuietEnd(t *testing.T) {
	set, err := templates.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{cfg: &config.Config{}, metrics: obs.NewMetrics(), log: zap.NewNop(), templates: templates.NewLive(set)}
	store := f.setupPreferences(nil)
	ctx := context.Background()
	patch, err := prefs.DecodePatch([]byte(`{"quiet_hours":{"from":"15:16","to":"15:27"},"time_zone":"UTC"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prefs.Change(ctx, store, set, "mem_q", patch); err != nil {
		t.Fatal(err)
	}
	day := func(h, m int) time.Time { return time.Date(2026, 12, 7, h, m, 0, 0, time.UTC) }
	for _, tc := range []struct {
		person string
		at     time.Time
		want   time.Time
	}{
		{"mem_q", day(15, 17), day(15, 27)},
		{"mem_q", day(15, 30), time.Time{}},
		{"mem_q", day(23, 0), time.Time{}}, // their own hours replace the category's
		{"mem_other", day(23, 0), day(24+7, 0)},
		{"mem_other", day(12, 0), time.Time{}},
	} {
		n := &notification.Notification{RecipientID: tc.person, Template: "gym.class.reminder", Channel: notification.Push,
			Category: "reminders", TimeZone: "UTC"}
		got, err := f.quietEnd(ctx, n, tc.at)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("%s at %v: %v %v, want %v", tc.person, tc.at, got, err, tc.want)
		}
	}
}
