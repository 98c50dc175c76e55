package templates_test

import (
	"maps"
	"testing"

	"github.com/gymhq/herald/templates"
)

// Every recipient of an event gets data of their own: their recipient_*
// keys in every notification, and a map that no other recipient's
// notification shares, so that changing one person's data (a caller may)
// changes nobody else's, nor what the next plan of the event gives. A
// person's own notifications may share one map.
func TestRecipientDataIsPerPerson(t *testing.T) {
	s := embedded(t)
	ev := decode(t, sample(t, "gym.class.cancelled", "three-attendees.json"))
	people, err := ev.People("attendees")
	if err != nil {
		t.Fatal(err)
	}
	planned := func() map[string][]map[string]string {
		ns, _, err := s.PlanWith(ev, planTime, templates.PlanOptions{NoQuietHours: true})
		if err != nil {
			t.Fatal(err)
		}
		byPerson := map[string][]map[string]string{}
		for _, n := range ns {
			byPerson[n.RecipientID] = append(byPerson[n.RecipientID], n.Data)
		}
		return byPerson
	}
	byPerson := planned()
	if len(byPerson) != len(people) || len(people) < 2 {
		t.Fatalf("%d people with notifications, want all %d (at least 2)", len(byPerson), len(people))
	}
	want := map[string]map[string]string{}
	for _, p := range people {
		datas := byPerson[p.ID]
		if len(datas) < 2 {
			t.Fatalf("%s has %d notifications, want several (email, sms, inapp)", p.ID, len(datas))
		}
		for _, d := range datas {
			for k, v := range map[string]string{"recipient_id": p.ID, "recipient_name": p.Name, "recipient_email": p.Email,
				"recipient_phone": p.Phone, "recipient_locale": p.Locale, "recipient_time_zone": p.TimeZone} {
				if d[k] != v {
					t.Errorf("%s's data has %s %q, want %q", p.ID, k, d[k], v)
				}
			}
		}
		want[p.ID] = maps.Clone(datas[0])
	}
	// Change every map of the first person's notifications.
	victim := people[0].ID
	for _, d := range byPerson[victim] {
		d["recipient_name"] = "Changed"
		d["recipient_id"] = "mem_changed"
		d["added"] = "x"
		delete(d, "class_name")
	}
	for _, p := range people[1:] {
		for _, d := range byPerson[p.ID] {
			if !maps.Equal(d, want[p.ID]) {
				t.Errorf("changing %s's data changed %s's: %v", victim, p.ID, d)
			}
		}
	}
	for id, datas := range planned() {
		for _, d := range datas {
			if !maps.Equal(d, want[id]) {
				t.Errorf("changing %s's data changed what the next plan gives %s: %v", victim, id, d)
			}
		}
	}
}
