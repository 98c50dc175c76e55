package pipeline_test

import (
	"context"
	"testing"
	"time"

	"github.com/gymhq/herald/caps"
	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/pipeline"
	"github.com/gymhq/herald/schedule"
	"github.com/gymhq/herald/templates"
)

// TestNewPlannerAndWaitFollowTheConfiguration: the planner and a channel's
// wait that herald run and the bench both build take the configuration's
// quiet hours and frequency-cap switch, and a scheduling horizon that the
// schedule topic's retention does not shorten (the scheduler writes a
// record again before the topic drops it).
func TestNewPlannerAndWaitFollowTheConfiguration(t *testing.T) {
	tpl, err := templates.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Defaults()
	cfg.Schedule.Retention = 10 * 24 * time.Hour
	p := pipeline.NewPlanner(cfg, tpl, time.Now, nil)
	if p.MaxAhead != schedule.MaxAhead || p.NoQuietHours || p.SMS == nil || p.Choices != nil {
		t.Errorf("planner: MaxAhead %v, NoQuietHours %v, SMS %v, Choices set %v; want schedule.MaxAhead, false, a policy, none",
			p.MaxAhead, p.NoQuietHours, p.SMS, p.Choices != nil)
	}
	cfg.Schedule.QuietHours = config.Off
	if !pipeline.NewPlanner(cfg, tpl, time.Now, nil).NoQuietHours {
		t.Error("planner with quiet hours off keeps them")
	}

	counter := caps.NewMemory()
	capOf := func(*notification.Notification) (caps.Limit, string, bool) { return caps.Limit{}, "", false }
	quietEnd := func(context.Context, *notification.Notification, time.Time) (time.Time, error) {
		return time.Time{}, nil
	}
	c := pipeline.Common{Config: cfg}
	if w := pipeline.NewWait(c, counter, capOf, quietEnd); w.Defer == nil || w.Caps == nil || w.CapOf == nil || w.QuietEnd != nil {
		t.Errorf("wait with caps on, quiet hours off: Defer %v, Caps %v, CapOf set %v, QuietEnd set %v", w.Defer != nil, w.Caps, w.CapOf != nil, w.QuietEnd != nil)
	}
	cfg.Schedule.QuietHours = config.Defaults().Schedule.QuietHours
	if w := pipeline.NewWait(c, counter, capOf, quietEnd); w.QuietEnd == nil {
		t.Error("wait with caps and quiet hours on: no QuietEnd")
	}
	cfg.Schedule.FrequencyCaps = config.Off
	if w := pipeline.NewWait(c, counter, capOf, quietEnd); w.Defer == nil || w.Caps != nil || w.CapOf != nil || w.QuietEnd != nil {
		t.Errorf("wait with caps off: Defer %v, Caps %v, CapOf set %v, QuietEnd set %v", w.Defer != nil, w.Caps, w.CapOf != nil, w.QuietEnd != nil)
	}
}
