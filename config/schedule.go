package config

import "time"

// Schedule is the scheduler's settings (package schedule), and the quiet
// hours switch.
type Schedule struct {
	// Retention is the schedule topic's retention, and how long the index
	// remembers fired and cancelled notifications.
	Retention time.Duration
	// Tick is how often the firing loop looks for due notifications.
	Tick time.Duration
	// QuietHours off sends at once what quiet hours would defer.
	QuietHours Switch
	// FrequencyCaps off sends what a category's caps would defer or drop.
	FrequencyCaps Switch
}

// The scheduler's variables, appended to the registry.
func init() {
	s := func(c *Config) *Schedule { return &c.Schedule }
	registry = append(registry,
		&variable{
			name: "HERALD_SCHEDULE_RETENTION", group: "Scheduling", def: "720h",
			doc: "Retention of `herald.schedule.v1` (set when herald creates it), the source of truth for every scheduled, deferred and retrying notification, " +
				"and how long the scheduler remembers fired and cancelled ones. A notification due later than this less a day has its schedule record written to the topic again every half retention, so the topic holds it until it fires (docs/scheduling.md); at most 366 days ahead are accepted. Lowering it does not reach reminders already waiting (docs/scheduling.md). " +
				"Changing it does not alter a topic that exists: set `retention.ms` on the topic too.",
			scope: []Role{RoleDispatcher},
			bind:  duration(func(c *Config) *time.Duration { return &s(c).Retention }, 48*time.Hour, 8760*time.Hour, false),
		},
		&variable{
			name: "HERALD_SCHEDULE_TICK", group: "Scheduling", def: "100ms",
			doc:   "How often the scheduler looks for notifications that are due; one goes out at most about this long after its due time while the scheduler keeps up.",
			scope: []Role{RoleDispatcher},
			bind:  duration(func(c *Config) *time.Duration { return &s(c).Tick }, 10*time.Millisecond, 10*time.Second, false),
		},
		&variable{
			name: "HERALD_QUIET_HOURS", group: "Scheduling", def: "on",
			doc: "`on`: a non-urgent notification due inside its category's quiet hours (templates `categories.yaml`, a person's own) in the recipient's time zone is deferred to their end. " +
				"`off` sends everything at once (a staging fleet, a load test); frequency caps and schedules still apply.",
			scope: []Role{RoleDispatcher},
			bind:  enum(func(c *Config) *Switch { return &s(c).QuietHours }, On, Off),
		},
		&variable{
			name: "HERALD_FREQUENCY_CAPS", group: "Scheduling", def: "on",
			doc: "`on`: the channel workers count each category's frequency caps (templates `categories.yaml`) fleet-wide and defer or drop what is over them. " +
				"`off` sends regardless (a staging fleet, a load test whose few simulated people would hit every cap).",
			scope: []Role{RoleChannels},
			bind:  enum(func(c *Config) *Switch { return &s(c).FrequencyCaps }, On, Off),
		},
	)
}
