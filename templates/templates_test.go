package templates_test

import (
	"errors"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/templates"
)

func TestEmbeddedShipsV1Types(t *testing.T) {
	s := embedded(t)
	want := []string{events.BookingCancelled, events.BookingConfirmed, events.ClassCancelled, events.ClassReminder, events.WaitlistPromoted, "gym.class.busy"}
	sort.Strings(want)
	if got := s.EventTypes(); !reflect.DeepEqual(got, want) {
		t.Fatalf("EventTypes = %v, want %v", got, want)
	}
	for _, typ := range want {
		if !s.Known(typ) {
			t.Errorf("Known(%q) = false", typ)
		}
	}
	if s.Known("gym.unknown") {
		t.Error(`Known("gym.unknown") = true`)
	}
}

// TestDefaultNotifications checks docs/contracts.md §2's defaults against the shipped
// samples: who gets what, on which channel, with which priority.
func TestDefaultNotifications(t *testing.T) {
	s := embedded(t)
	for _, tc := range []struct {
		typ, sample string
		want        string
		priority    notification.Priority
		attachment  string // content type of the email attachment, if any
	}{
		{events.BookingConfirmed, "member-en.json", "email:1 push:1 inapp:1", notification.Normal, "text/calendar; method=REQUEST; charset=UTF-8"},
		{events.BookingConfirmed, "member-es.json", "email:1 push:2 inapp:1", notification.Normal, "text/calendar; method=REQUEST; charset=UTF-8"},
		{events.BookingCancelled, "member-en-with-reason.json", "email:1 push:1 inapp:1", notification.Normal, "text/calendar; method=CANCEL; charset=UTF-8"},
		{events.WaitlistPromoted, "member-en.json", "sms:1 push:1 inapp:1", notification.High, ""},
		{events.ClassReminder, "member-with-push-en.json", "push:1 inapp:1", notification.Normal, ""},
		{events.ClassReminder, "member-without-push-es.json", "sms:1 inapp:1", notification.Normal, ""},
		{events.ClassCancelled, "three-attendees.json", "email:3 sms:3 inapp:3", notification.High, ""},
	} {
		t.Run(tc.typ+"/"+tc.sample, func(t *testing.T) {
			ns := plan(t, s, decode(t, sample(t, tc.typ, tc.sample)))
			if got := channelCount(ns); got != tc.want {
				t.Fatalf("planned %s, want %s", got, tc.want)
			}
			for _, n := range ns {
				if n.Priority != tc.priority {
					t.Errorf("%s priority %s, want %s", n.Channel, n.Priority, tc.priority)
				}
				if n.Template != tc.typ || n.EventType != tc.typ || n.Attempt != 0 || !n.CreatedAt.Equal(planTime) {
					t.Errorf("%s: template %q event_type %q attempt %d created_at %v", n.Channel, n.Template, n.EventType, n.Attempt, n.CreatedAt)
				}
				if err := n.Validate(); err != nil {
					t.Errorf("%s: %v", n.Channel, err)
				}
				if n.Channel == notification.Email {
					m := render(t, s, &n)
					var got string
					if len(m.Attachments) == 1 {
						got = m.Attachments[0].ContentType
					}
					if got != tc.attachment {
						t.Errorf("email attachment %q, want %q", got, tc.attachment)
					}
				}
			}
		})
	}
}

func TestHTMLIsEscaped(t *testing.T) {
	s := embedded(t)
	ev := sample(t, events.BookingConfirmed, "member-en.json")
	at(ev, "data.member")["name"] = "Ana <b>Díaz</b>"
	at(ev, "data.class")["name"] = `Spin <script>alert("x")</script>`
	ns := only(plan(t, s, decode(t, ev)), notification.Email)
	m := render(t, s, &ns[0])
	for _, bad := range []string{"<b>Díaz</b>", "<script>"} {
		if strings.Contains(m.HTML, bad) {
			t.Errorf("HTML contains %q unescaped", bad)
		}
	}
	for _, good := range []string{"Ana &lt;b&gt;Díaz&lt;/b&gt;", "Spin &lt;script&gt;"} {
		if !strings.Contains(m.HTML, good) {
			t.Errorf("HTML lacks %q", good)
		}
	}
	// Plain text is not HTML: it carries the name as given.
	if !strings.Contains(m.Text, "Ana <b>Díaz</b>") {
		t.Errorf("text part lacks the literal name:\n%s", m.Text)
	}
	if m.ToName != "Ana <b>Díaz</b>" {
		t.Errorf("ToName = %q", m.ToName)
	}
}

func TestRenderMissingDataNamesFileAndKey(t *testing.T) {
	s := embedded(t)
	ns := plan(t, s, decode(t, sample(t, events.BookingConfirmed, "member-en.json")))
	for _, tc := range []struct {
		ch          notification.Channel
		drop        string
		file, inMsg string
	}{
		{notification.Email, "class_name", "gym.booking.confirmed/email.en.subject.txt", `"class_name"`},
		{notification.Email, "booking_id", "gym.booking.confirmed/email.en.txt", `"booking_id"`},
		{notification.Push, "class_starts_at", "gym.booking.confirmed/push.en.body.txt", `"class_date"`},
		{notification.Push, "class_id", "gym.booking.confirmed/routing.yaml", `"class_id"`},
	} {
		n := only(ns, tc.ch)[0]
		n.Data = n.Data.Without(tc.drop)
		_, err := s.Render(&n)
		if err == nil {
			t.Errorf("%s without %s: no error", tc.ch, tc.drop)
			continue
		}
		if failure.ClassOf(err) != failure.Permanent || failure.ReasonOf(err) != failure.ReasonRender {
			t.Errorf("%s without %s: class %v reason %v, want permanent render", tc.ch, tc.drop, failure.ClassOf(err), failure.ReasonOf(err))
		}
		if !strings.Contains(err.Error(), tc.file) || !strings.Contains(err.Error(), tc.inMsg) {
			t.Errorf("%s without %s: %q does not name %s and %s", tc.ch, tc.drop, err, tc.file, tc.inMsg)
		}
	}
}

// with is d with each key of kv (key, value, key, value...) set.
func with(d notification.Data, kv ...string) notification.Data {
	for i := 0; i+1 < len(kv); i += 2 {
		d = d.With(notification.Field{Key: kv[i], Value: kv[i+1]})
	}
	return d
}

func TestLocaleResolution(t *testing.T) {
	s := embedded(t)
	n := only(plan(t, s, decode(t, sample(t, events.BookingConfirmed, "member-en.json"))), notification.Email)[0]
	for _, tc := range []struct{ locale, want, subject string }{
		{"es-MX", "es", "Reserva confirmada"},
		{"es_419", "es", "Reserva confirmada"},
		{"es", "es", "Reserva confirmada"},
		{"ES-es", "es", "Reserva confirmada"},
		{"fr-FR", "en", "You're booked"},
		{"en-GB", "en", "You're booked"},
		{"", "en", "You're booked"},
		{"not a locale!", "en", "You're booked"},
	} {
		n.Locale = tc.locale
		m := render(t, s, &n)
		if m.Locale != tc.want || !strings.HasPrefix(m.Subject, tc.subject) {
			t.Errorf("locale %q: rendered %s %q, want %s %q…", tc.locale, m.Locale, m.Subject, tc.want, tc.subject)
		}
	}
}

func TestPlanHonoursPreferences(t *testing.T) {
	s := embedded(t)
	for _, tc := range []struct {
		name  string
		typ   string
		file  string
		prefs map[string]any
		edit  func(member map[string]any)
		want  string
	}{
		{"all on", events.WaitlistPromoted, "member-en.json", nil, nil, "sms:1 push:1 inapp:1"},
		{"sms off", events.WaitlistPromoted, "member-en.json", map[string]any{"sms": false}, nil, "push:1 inapp:1"},
		{"push off", events.WaitlistPromoted, "member-en.json", map[string]any{"push": false}, nil, "sms:1 inapp:1"},
		// Transactional is required, never switched off entirely: with
		// every channel off each rule still sends once, on the first of
		// its channels that reaches the member (TestRequiredCategory-
		// NeverSwitchedOffEntirely).
		{"everything off", events.WaitlistPromoted, "member-en.json", map[string]any{"sms": false, "push": false, "email": false, "inapp": false}, nil, "sms:1 inapp:1"},
		{"email off", events.BookingConfirmed, "member-en.json", map[string]any{"email": false}, nil, "push:1 inapp:1"},
		{"no phone", events.WaitlistPromoted, "member-en.json", nil, func(m map[string]any) { delete(m, "phone") }, "push:1 inapp:1"},
		{"no email", events.BookingConfirmed, "member-en.json", nil, func(m map[string]any) { m["email"] = "" }, "push:1 inapp:1"},
		{"one push per token", events.BookingConfirmed, "member-en.json", nil, func(m map[string]any) {
			m["push_tokens"] = []any{"tok_a", "tok_b", "tok_a", "tok_c"}
		}, "email:1 push:3 inapp:1"},
		// class.reminder: push when it reaches the member, else SMS.
		{"reminder with tokens", events.ClassReminder, "member-with-push-en.json", nil, nil, "push:1 inapp:1"},
		{"reminder without tokens", events.ClassReminder, "member-with-push-en.json", nil, func(m map[string]any) { delete(m, "push_tokens") }, "sms:1 inapp:1"},
		{"reminder with empty token list", events.ClassReminder, "member-with-push-en.json", nil, func(m map[string]any) { m["push_tokens"] = []any{} }, "sms:1 inapp:1"},
		{"reminder push opted out", events.ClassReminder, "member-with-push-en.json", map[string]any{"push": false}, nil, "sms:1 inapp:1"},
		{"reminder push and sms opted out", events.ClassReminder, "member-with-push-en.json", map[string]any{"push": false, "sms": false}, nil, "inapp:1"},
		{"reminder no tokens no phone", events.ClassReminder, "member-without-push-es.json", nil, func(m map[string]any) { delete(m, "phone") }, "inapp:1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := sample(t, tc.typ, tc.file)
			member := at(ev, "data.member")
			if tc.prefs != nil {
				member["preferences"] = tc.prefs
			}
			if tc.edit != nil {
				tc.edit(member)
			}
			ns := plan(t, s, decode(t, ev))
			if got := channelCount(ns); got != tc.want {
				t.Fatalf("planned %q, want %q", got, tc.want)
			}
			for _, n := range ns {
				render(t, s, &n)
			}
		})
	}
}

func TestClassCancelledNotifiesEveryAttendee(t *testing.T) {
	s := embedded(t)
	ns := plan(t, s, decode(t, sample(t, events.ClassCancelled, "three-attendees.json")))
	want := map[string]string{ // recipient, channel → address
		"mem_carlos email": "carlos.pena@example.com", "mem_carlos sms": "+34600123456",
		"mem_marta email": "marta.ruiz@example.com", "mem_marta sms": "+34600987654",
		"mem_james email": "james.oconnor@example.com", "mem_james sms": "+447700900789",
		"mem_carlos inapp": "mem_carlos", "mem_marta inapp": "mem_marta", "mem_james inapp": "mem_james",
	}
	got := map[string]string{}
	ids := map[string]bool{}
	for _, n := range ns {
		got[n.RecipientID+" "+string(n.Channel)] = n.To
		ids[n.ID] = true
		if n.Data.Get("recipient_id") != n.RecipientID {
			t.Errorf("%s: data recipient_id %q", n.RecipientID, n.Data.Get("recipient_id"))
		}
		m := render(t, s, &n)
		if !strings.Contains(m.Text, "Instructor unwell") {
			t.Errorf("%s %s does not mention the reason:\n%s", n.RecipientID, n.Channel, m.Text)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("planned %v, want %v", got, want)
	}
	if len(ids) != 9 {
		t.Fatalf("%d distinct ids, want 9", len(ids))
	}
}

func TestPlanIsDeterministic(t *testing.T) {
	s := embedded(t)
	for _, typ := range s.EventTypes() {
		raw := sample(t, typ, firstSample(t, typ))
		a, err := s.Plan(decode(t, raw), planTime)
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.Plan(decode(t, raw), planTime.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(a) == 0 || len(a) != len(b) {
			t.Fatalf("%s: %d then %d notifications", typ, len(a), len(b))
		}
		for i := range a {
			if a[i].ID != b[i].ID || !reflect.DeepEqual(a[i].Data, b[i].Data) {
				t.Errorf("%s: notification %d differs between two plans of the same event", typ, i)
			}
			enc, err := notification.Encode(&a[i])
			if err != nil {
				t.Fatal(err)
			}
			if _, err := notification.Decode(enc); err != nil {
				t.Errorf("%s: planned notification does not round-trip: %v", typ, err)
			}
		}
	}
}

// firstSample names one shipped sample of each type.
func firstSample(t *testing.T, typ string) string {
	t.Helper()
	return map[string]string{
		events.BookingConfirmed: "member-en.json", events.BookingCancelled: "member-en-with-reason.json",
		events.WaitlistPromoted: "member-en.json", events.ClassReminder: "member-with-push-en.json",
		events.ClassCancelled: "three-attendees.json", "gym.class.busy": "studio2-en.json",
	}[typ]
}

// samples names every shipped sample of typ.
func samples(t *testing.T, typ string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(typ, "samples", "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("%s: no samples", typ)
	}
	for i, p := range paths {
		paths[i] = filepath.Base(p)
	}
	return paths
}

func TestDataContract(t *testing.T) {
	s := embedded(t)
	ns := plan(t, s, decode(t, sample(t, events.BookingConfirmed, "member-es.json")))
	d := ns[0].Data
	want := map[string]string{
		"booking_id":            "bkg_9HF3TZ1A",
		"class_id":              "cls_mad_spin_0700",
		"class_name":            "Spinning 45",
		"class_starts_at":       "2026-11-23T06:00:00Z",
		"class_time_zone":       "Europe/Madrid",
		"class_capacity":        "24",
		"class_instructor_name": "Lucía Romero",
		"member_name":           "Carlos Peña",
		"event_id":              "evt_01JD8X4B2K",
		"event_type":            "gym.booking.confirmed",
		"event_time":            "2026-11-20T19:30:00Z",
		"recipient_id":          "mem_carlos",
		"recipient_name":        "Carlos Peña",
		"recipient_first_name":  "Carlos",
		"recipient_email":       "carlos.pena@example.com",
		"recipient_phone":       "+34600123456",
		"recipient_locale":      "es-ES",
		"recipient_time_zone":   "Europe/Madrid",
	}
	for k, v := range want {
		if d.Get(k) != v {
			t.Errorf("data[%q] = %q, want %q", k, d.Get(k), v)
		}
	}
	for k, v := range d.All() {
		if strings.Contains(k, "push_tokens") || strings.Contains(k, "preferences") || strings.Contains(v, "fcm_tok") {
			t.Errorf("data carries %s=%q; push tokens and preferences are not template data", k, v)
		}
	}
	// Render-time values are not carried on the wire.
	for _, k := range []string{"class_date", "class_start_time", "local_time_zone"} {
		if _, ok := d.Lookup(k); ok {
			t.Errorf("planned data has render-time key %q", k)
		}
	}
}

func TestUnknownTypeAndTemplate(t *testing.T) {
	s := embedded(t)
	ev := sample(t, events.BookingConfirmed, "member-en.json")
	ev["type"] = "gym.towel.returned"
	if _, err := s.Plan(decode(t, ev), planTime); !errors.Is(err, templates.ErrUnknownType) {
		t.Errorf("Plan of an unknown type: %v, want ErrUnknownType", err)
	}
	n := notification.Notification{Template: "gym.towel.returned", Channel: notification.Email, To: "a@example.com"}
	if _, err := s.Render(&n); failure.ClassOf(err) != failure.Permanent || failure.ReasonOf(err) != failure.ReasonRender {
		t.Errorf("Render of an unknown template: %v, want permanent render error", err)
	}
	n = notification.Notification{Template: events.ClassReminder, Channel: notification.Email, To: "a@example.com"}
	if _, err := s.Render(&n); failure.ReasonOf(err) != failure.ReasonRender {
		t.Errorf("Render on a channel the rule does not send: %v, want render error", err)
	}
}

// TestOptionalFieldsMayBeAbsent renders every shipped template against
// events stripped of everything docs/contracts.md §2 and events.Decode leave optional,
// so a member without a name or a class without a location or instructor
// cannot make a message fail permanently.
func TestOptionalFieldsMayBeAbsent(t *testing.T) {
	s := embedded(t)
	for _, typ := range s.EventTypes() {
		for _, name := range samples(t, typ) {
			optionalFieldsAbsent(t, s, typ, name)
		}
	}
}

func optionalFieldsAbsent(t *testing.T, s *templates.Set, typ, name string) {
	t.Helper()
	{
		ev := sample(t, typ, name)
		data := at(ev, "data")
		delete(data, "reason")
		if typ == events.ClassCancelled {
			data["reason"] = "x" // required for this type
		}
		class := at(ev, "data.class")
		if typ != "gym.class.busy" { // its recipients are the instructor and the location's desk
			delete(class, "location")
		}
		delete(class, "instructor")
		delete(class, "capacity")
		delete(class, "booked")
		people := []map[string]any{}
		if m, ok := data["member"].(map[string]any); ok {
			people = append(people, m)
		}
		if l, ok := data["attendees"].([]any); ok {
			for _, a := range l {
				people = append(people, a.(map[string]any))
			}
		}
		for _, p := range people {
			for _, k := range []string{"name", "locale", "time_zone", "preferences"} {
				delete(p, k)
			}
		}
		ns := plan(t, s, decode(t, ev))
		if len(ns) == 0 {
			t.Fatalf("%s %s: nothing planned", typ, name)
		}
		for _, n := range ns {
			for _, locale := range []string{"en", "es"} {
				n.Locale = locale
				m := render(t, s, &n)
				if strings.Contains(m.Text, "<no value>") || strings.Contains(m.HTML, "<no value>") {
					t.Errorf("%s %s %s renders <no value>", typ, n.Channel, locale)
				}
			}
		}
	}
}

func TestSMSPunctuationIsGSM(t *testing.T) {
	s := embedded(t)
	ev := sample(t, events.WaitlistPromoted, "member-en.json")
	at(ev, "data.class")["name"] = "Mum\u2019s \u201cBootcamp\u201d \u2013 Level\u00a02"
	n := only(plan(t, s, decode(t, ev)), notification.SMS)[0]
	m := render(t, s, &n)
	if !strings.Contains(m.Text, `Mum's "Bootcamp" - Level 2`) {
		t.Errorf("SMS punctuation not normalised: %q", m.Text)
	}
}

// TestRenderConcurrently renders shipped notifications from many goroutines
// and compares with serial renders; run with -race.
func TestRenderConcurrently(t *testing.T) {
	s := embedded(t)
	var ns []notification.Notification
	for _, typ := range s.EventTypes() {
		for _, name := range samples(t, typ) {
			ns = append(ns, plan(t, s, decode(t, sample(t, typ, name)))...)
		}
	}
	want := make([]string, len(ns))
	for i := range ns {
		want[i] = string(templates.Dump(render(t, s, &ns[i])))
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8*len(ns))
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ns {
				m, err := s.Render(&ns[i])
				if err != nil {
					errs <- err.Error()
					continue
				}
				if got := string(templates.Dump(m)); got != want[i] {
					errs <- "concurrent render differs for " + ns[i].ID
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
