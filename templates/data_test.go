package templates_test

import (
	"testing"

	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/templates"
)

// Every recipient of an event gets data of their own: their recipient_*
// keys in every notification, the same in each of a person's
// notifications, and the same again when the event is planned again.
// (Data cannot be changed in place, so no person's can change another's.)
func TestRecipientDataIsPerPerson(t *testing.T) {
	s := embedded(t)
	ev := decode(t, sample(t, "gym.class.cancelled", "three-attendees.json"))
	people, err := ev.People("attendees")
	if err != nil {
		t.Fatal(err)
	}
	planned := func() map[string][]notification.Data {
		ns, _, err := s.PlanWith(ev, planTime, templates.PlanOptions{NoQuietHours: true})
		if err != nil {
			t.Fatal(err)
		}
		byPerson := map[string][]notification.Data{}
		for _, n := range ns {
			byPerson[n.RecipientID] = append(byPerson[n.RecipientID], n.Data)
		}
		return byPerson
	}
	byPerson := planned()
	if len(byPerson) != len(people) || len(people) < 2 {
		t.Fatalf("%d people with notifications, want all %d (at least 2)", len(byPerson), len(people))
	}
	for _, p := range people {
		datas := byPerson[p.ID]
		if len(datas) < 2 {
			t.Fatalf("%s has %d notifications, want several (email, sms, inapp)", p.ID, len(datas))
		}
		for _, d := range datas {
			for k, v := range map[string]string{"recipient_id": p.ID, "recipient_name": p.Name, "recipient_email": p.Email,
				"recipient_phone": p.Phone, "recipient_locale": p.Locale, "recipient_time_zone": p.TimeZone} {
				if got, ok := d.Lookup(k); !ok || got != v {
					t.Errorf("%s's data has %s %q, want %q", p.ID, k, got, v)
				}
			}
			if !d.Equal(datas[0]) {
				t.Errorf("%s's notifications have different data:\n%v\n%v", p.ID, d, datas[0])
			}
		}
	}
	for id, datas := range planned() {
		for _, d := range datas {
			if !d.Equal(byPerson[id][0]) {
				t.Errorf("the next plan gives %s other data: %v", id, d)
			}
		}
	}
}
