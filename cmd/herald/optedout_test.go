package main

import (
	"context"
	"testing"

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
