package prefs_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	_ "github.com/gymhq/herald/channels/all"
	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/prefs"
	"github.com/gymhq/herald/templates"
)

func embedded(t testing.TB) *templates.Set {
	t.Helper()
	s, err := templates.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func patch(t testing.TB, body string) *prefs.Patch {
	t.Helper()
	p, err := prefs.DecodePatch([]byte(body))
	if err != nil {
		t.Fatalf("DecodePatch(%s): %v", body, err)
	}
	return p
}

func on(v bool) *bool { return &v }

func TestDecodePatch(t *testing.T) {
	got := patch(t, `{"channels":{"email":true,"sms":null},
		"categories":{"marketing":{"email":false},"updates":null},
		"quiet_hours":{"from":"23:00","to":"06:30"},"time_zone":"Europe/London",
		"required":["transactional"],"descriptions":{}}`)
	want := &prefs.Patch{
		Channels:   map[notification.Channel]*bool{"email": on(true), "sms": nil},
		Categories: map[string]map[notification.Channel]*bool{"marketing": {"email": on(false)}, "updates": nil},
		QuietSet:   true, Quiet: &prefs.QuietHours{From: 23 * 60, To: 6*60 + 30},
		ZoneSet: true, Zone: "Europe/London",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("DecodePatch = %+v\nwant %+v", got, want)
	}
	if p := patch(t, `{"channels":null,"categories":null,"quiet_hours":"off","time_zone":null}`); !p.ResetChannels || !p.ResetCategories ||
		!p.QuietSet || p.Quiet == nil || !p.Quiet.Off || !p.ZoneSet || p.Zone != "" {
		t.Errorf("nulls and off: %+v", p)
	}
	if p := patch(t, `{"quiet_hours":null}`); !p.QuietSet || p.Quiet != nil {
		t.Errorf("quiet_hours null: %+v", p)
	}
	if p := patch(t, ` {} `); !reflect.DeepEqual(p, &prefs.Patch{}) {
		t.Errorf("empty object: %+v", p)
	}
}

// TestDecodePatchRefuses: every bad body is ErrInvalid with the field
// named, as the gateway's 400 shows it.
func TestDecodePatchRefuses(t *testing.T) {
	cases := []struct{ body, field, text string }{
		{``, "", "must be a JSON object"},
		{`[]`, "", "must be a JSON object"},
		{`{"channels":{"email":true}`, "", "not valid JSON"},
		{`{} {}`, "", "data after its end"},
		{`{"channel":{}}`, "channel", "is not a preference"},
		{`{"channels":{"email":"yes"}}`, "channels.email", "true, false or null"},
		{`{"channels":{"email":1}}`, "channels.email", "true, false or null"},
		{`{"channels":{"Email":true}}`, "channels.Email", "is not a channel"},
		{`{"channels":[]}`, "channels", "must be a JSON object"},
		{`{"channels":{"email":true,"email":false}}`, "channels.email", "given twice"},
		{`{"channels":{},"channels":{}}`, "channels", "given twice"},
		{`{"categories":{"Marketing":{}}}`, `categories.Marketing`, "not a category name"},
		{`{"categories":{"marketing":{"email":0}}}`, "categories.marketing.email", "true, false or null"},
		{`{"categories":{"marketing":true}}`, "categories.marketing", "must be a JSON object"},
		{`{"categories":{"a b":{}}}`, `categories."a b"`, "not a category name"},
		{`{"quiet_hours":{"from":"23:00"}}`, "quiet_hours", "needs both from and to"},
		{`{"quiet_hours":{"from":"23:00","to":"23:00"}}`, "quiet_hours", `write "off"`},
		{`{"quiet_hours":{"from":"24:00","to":"06:00"}}`, "quiet_hours.from", "not a time of day"},
		{`{"quiet_hours":{"from":"7:00","to":"06:00"}}`, "quiet_hours.from", "not a time of day"},
		{`{"quiet_hours":{"from":"23:00","to":"06:00","days":1}}`, "quiet_hours.days", "not part of quiet hours"},
		{`{"quiet_hours":"on"}`, "quiet_hours", `must be "off"`},
		{`{"quiet_hours":true}`, "quiet_hours", `must be "off"`},
		{`{"time_zone":"Mars/Olympus"}`, "time_zone", "zone database"},
		{`{"time_zone":"Local"}`, "time_zone", "not an IANA"},
		{`{"time_zone":"../etc/passwd"}`, "time_zone", "not an IANA"},
		{`{"time_zone":""}`, "time_zone", "not an IANA"},
		{`{"time_zone":3}`, "time_zone", "IANA time zone name"},
		{`{"channels":{"email":true}}` + strings.Repeat(" ", prefs.MaxBodyBytes), "", "over"},
	}
	for _, c := range cases {
		_, err := prefs.DecodePatch([]byte(c.body))
		var pe *prefs.Error
		if !errors.As(err, &pe) || !errors.Is(err, prefs.ErrInvalid) {
			t.Errorf("%.60s: error %v, want a prefs.Error matching ErrInvalid", c.body, err)
			continue
		}
		if pe.Field != c.field || !strings.Contains(pe.Text, c.text) || (c.field != "" && !strings.HasPrefix(pe.Text, c.field+": ")) {
			t.Errorf("%.60s: field %q, %q; want field %q and text with %q", c.body, pe.Field, pe.Text, c.field, c.text)
		}
	}
}

func TestMergeAndAllows(t *testing.T) {
	p := &prefs.Prefs{}
	p.Merge(patch(t, `{"channels":{"sms":false,"push":false},"categories":{"marketing":{"email":false},"reminders":{"sms":true}},"time_zone":"Asia/Tokyo"}`))
	p.Merge(patch(t, `{"channels":{"push":null},"categories":{"marketing":{"email":null,"push":false}},"quiet_hours":{"from":"21:30","to":"08:00"}}`))
	want := &prefs.Prefs{
		Channels:   map[notification.Channel]bool{"sms": false},
		Categories: map[string]map[notification.Channel]bool{"marketing": {"push": false}, "reminders": {"sms": true}},
		Quiet:      &prefs.QuietHours{From: 21*60 + 30, To: 8 * 60},
		Zone:       "Asia/Tokyo",
	}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("merged %+v\nwant %+v", p, want)
	}
	allows := []struct {
		cat       string
		ch        notification.Channel
		allow, ok bool
	}{
		{"reminders", "sms", true, true},     // the category's own choice wins
		{"updates", "sms", false, true},      // the channel-wide choice
		{"marketing", "push", false, true},   // category
		{"marketing", "email", false, false}, // nothing stored: not decided
		{"", "sms", false, true},             // "" is transactional
	}
	for _, a := range allows {
		if allow, ok := p.Allows(a.cat, a.ch); allow != a.allow || ok != a.ok {
			t.Errorf("Allows(%q, %s) = %v, %v; want %v, %v", a.cat, a.ch, allow, ok, a.allow, a.ok)
		}
	}
	if from, to, set := p.QuietHours(); from != 21*60+30 || to != 8*60 || !set {
		t.Errorf("QuietHours = %d, %d, %v", from, to, set)
	}
	if p.TimeZone() != "Asia/Tokyo" {
		t.Errorf("TimeZone = %q", p.TimeZone())
	}
	p.Merge(patch(t, `{"quiet_hours":"off","time_zone":null,"categories":{"marketing":null}}`))
	if from, to, set := p.QuietHours(); from != to || !set {
		t.Errorf("quiet hours off: QuietHours = %d, %d, %v; want from == to, set", from, to, set)
	}
	if p.TimeZone() != "" || p.Categories["marketing"] != nil {
		t.Errorf("after removal: %+v", p)
	}
	p.Merge(patch(t, `{"channels":null,"categories":null,"quiet_hours":null}`))
	if !p.Empty() {
		t.Errorf("everything removed, yet not empty: %+v", p)
	}
	var none *prefs.Prefs
	if _, ok := none.Allows("marketing", "email"); ok {
		t.Error("nil Prefs decided something")
	}
}

func TestStoredFormRoundTrips(t *testing.T) {
	p := &prefs.Prefs{
		Channels:   map[notification.Channel]bool{"sms": false},
		Categories: map[string]map[notification.Channel]bool{"marketing": {"email": false}},
		Quiet:      &prefs.QuietHours{From: 23 * 60, To: 6*60 + 30},
		Zone:       "Europe/London",
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"channels":{"sms":false},"categories":{"marketing":{"email":false}},"quiet_hours":{"from":"23:00","to":"06:30"},"time_zone":"Europe/London"}`
	if string(b) != want {
		t.Errorf("JSON %s\nwant %s", b, want)
	}
	var back prefs.Prefs
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(&back, p) {
		t.Errorf("round trip: %+v, %v", back, err)
	}
	// The stored form is a patch too: it sets exactly what it holds.
	q := &prefs.Prefs{}
	q.Merge(patch(t, string(b)))
	if !reflect.DeepEqual(q, p) {
		t.Errorf("as a patch: %+v", q)
	}
}

func TestValidate(t *testing.T) {
	set := embedded(t)
	bad := []struct {
		body     string
		required bool
		field    string
		text     string
	}{
		{`{"channels":{"fax":false}}`, false, "channels.fax", "not a channel you can choose (email, sms, push, inapp)"},
		{`{"channels":{"webhook":false}}`, false, "channels.webhook", "not a channel you can choose"},
		{`{"categories":{"offers":{"email":false}}}`, false, "categories.offers", "not a category (marketing, reminders, staff, transactional, updates)"},
		{`{"categories":{"marketing":{"fax":false}}}`, false, "categories.marketing.fax", "not a channel"},
		{`{"categories":{"transactional":{"email":false,"sms":false,"push":false,"inapp":false}}}`, true, "categories.transactional",
			"transactional cannot be switched off entirely; keep at least one channel"},
		// Channel-wide choices count: nothing left for transactional.
		{`{"channels":{"email":false,"sms":false,"push":false,"inapp":false}}`, true, "categories.transactional", "cannot be switched off entirely"},
	}
	for _, b := range bad {
		p := &prefs.Prefs{}
		p.Merge(patch(t, b.body))
		err := p.Validate(set)
		var pe *prefs.Error
		want := prefs.ErrInvalid
		if b.required {
			want = prefs.ErrRequired
		}
		if !errors.As(err, &pe) || !errors.Is(err, want) || pe.Field != b.field || !strings.Contains(pe.Text, b.text) {
			t.Errorf("%s: Validate = %v (field %v); want %v on %s saying %q", b.body, err, pe, want, b.field, b.text)
		}
	}
	good := []string{
		`{}`,
		// Moved between channels: inapp stays on for transactional.
		`{"categories":{"transactional":{"email":false,"sms":false,"push":false}}}`,
		// Everything off channel-wide, but transactional keeps email.
		`{"channels":{"email":false,"sms":false,"push":false,"inapp":false},"categories":{"transactional":{"email":true}}}`,
		`{"categories":{"marketing":{"email":false,"sms":false,"push":false,"inapp":false}}}`,
	}
	for _, g := range good {
		p := &prefs.Prefs{}
		p.Merge(patch(t, g))
		if err := p.Validate(set); err != nil {
			t.Errorf("%s: %v", g, err)
		}
	}
}

func TestView(t *testing.T) {
	set := embedded(t)
	v := prefs.NewView(nil, set)
	b, _ := json.Marshal(v)
	const defaults = `"categories":{"marketing":{"email":true,"inapp":true,"push":false,"sms":false},` +
		`"reminders":{"email":true,"inapp":true,"push":true,"sms":true},` +
		`"staff":{"email":true,"inapp":true,"push":true,"sms":true},` +
		`"transactional":{"email":true,"inapp":true,"push":true,"sms":true},` +
		`"updates":{"email":true,"inapp":true,"push":true,"sms":true}},"required":["transactional"]`
	if !strings.HasPrefix(string(b), `{"channels":{"email":true,"inapp":true,"push":true,"sms":true},`+defaults) {
		t.Errorf("defaults view:\n%s", b)
	}
	if strings.Contains(string(b), "quiet_hours") || strings.Contains(string(b), "time_zone") {
		t.Errorf("a person with no stored choice shows quiet hours or a zone: %s", b)
	}
	p := &prefs.Prefs{}
	p.Merge(patch(t, `{"channels":{"sms":false},"categories":{"marketing":{"push":true},"reminders":{"sms":true}},"quiet_hours":"off","time_zone":"UTC"}`))
	v = prefs.NewView(p, set)
	checks := []struct {
		name      string
		got, want bool
	}{
		{"channels.sms", v.Channels["sms"], false},
		{"channels.email", v.Channels["email"], true},
		{"updates.sms (channel-wide)", v.Categories["updates"]["sms"], false},
		{"reminders.sms (category wins)", v.Categories["reminders"]["sms"], true},
		{"marketing.push (category over default)", v.Categories["marketing"]["push"], true},
		{"marketing.sms (channel-wide over default)", v.Categories["marketing"]["sms"], false},
		{"marketing.email (default)", v.Categories["marketing"]["email"], true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if v.QuietHours == nil || !v.QuietHours.Off || v.TimeZone != "UTC" || v.Descriptions["marketing"] == "" {
		t.Errorf("view %+v", v)
	}
	if _, ok := v.Channels["webhook"]; ok {
		t.Error("the view offers the webhook channel, which is partners', not the person's")
	}
}

// FuzzDecodePatch: no body panics; what decodes is either refused with a
// prefs.Error or merges into preferences whose stored form decodes back to
// the same thing.
func FuzzDecodePatch(f *testing.F) {
	for _, s := range []string{
		`{"channels":{"email":true,"sms":false},"categories":{"marketing":{"email":false}}}`,
		`{"quiet_hours":{"from":"23:00","to":"06:30"},"time_zone":"Europe/London"}`,
		`{"channels":null,"categories":{"updates":null},"quiet_hours":"off","time_zone":null}`,
		`{"categories":{"marketing":{"email":null}}}`, `{}`, `[]`, `null`, `{"a":1}`, `{"channels":{"email":true}} x`,
	} {
		f.Add([]byte(s))
	}
	set := embedded(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		patch, err := prefs.DecodePatch(body)
		if err != nil {
			var pe *prefs.Error
			if !errors.As(err, &pe) || !errors.Is(err, prefs.ErrInvalid) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		_ = patch.Validate(set)
		p := &prefs.Prefs{}
		p.Merge(patch)
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var back prefs.Prefs
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("stored form %s does not decode: %v", b, err)
		}
		if p.Empty() != back.Empty() || !reflect.DeepEqual(p, &back) && !p.Empty() {
			t.Fatalf("stored form %s decodes as %+v, want %+v", b, back, p)
		}
	})
}

// TestStoredChoicesOverrideTheEvent: planned with what a person stored,
// their stored choice wins over the event's preferences field, which wins
// over the category's default; a reminder whose push the person turned
// off falls back to SMS.
func TestStoredChoicesOverrideTheEvent(t *testing.T) {
	set := embedded(t)
	raw, err := os.ReadFile("../templates/gym.booking.confirmed/samples/member-en.json")
	if err != nil {
		t.Fatal(err)
	}
	ev, err := events.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 20, 18, 4, 0, 0, time.UTC)
	plan := func(body string) map[string]bool {
		t.Helper()
		s := prefs.NewMemory()
		if body != "" {
			if _, err := prefs.Change(context.Background(), s, set, "mem_emma", patch(t, body)); err != nil {
				t.Fatal(err)
			}
		}
		lookup := prefs.PlanChoices(s)
		ns, _, err := set.PlanWith(ev, now, templates.PlanOptions{Choices: func(id string) templates.Choices {
			m, err := lookup(context.Background(), []string{id})
			if err != nil {
				t.Fatal(err)
			}
			return m[id]
		}})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, n := range ns {
			if n.RecipientID == "mem_emma" {
				got[n.Category+"/"+string(n.Channel)] = true
			}
		}
		return got
	}
	cases := []struct {
		body      string
		want, not []string
	}{
		{"", []string{"transactional/email", "transactional/push", "reminders/push"}, []string{"reminders/sms"}},
		// The event says push: true; the person's stored choice wins, and
		// the reminder falls back to SMS.
		{`{"channels":{"push":false}}`, []string{"transactional/email", "reminders/sms"}, []string{"transactional/push", "reminders/push"}},
		{`{"categories":{"reminders":{"push":false,"sms":false}}}`, []string{"transactional/push"}, []string{"reminders/push", "reminders/sms"}},
		{`{"categories":{"transactional":{"email":false}}}`, []string{"transactional/push"}, []string{"transactional/email"}},
	}
	for _, c := range cases {
		got := plan(c.body)
		for _, w := range c.want {
			if !got[w] {
				t.Errorf("%s: no %s in %v", c.body, w, got)
			}
		}
		for _, n := range c.not {
			if got[n] {
				t.Errorf("%s: %s planned: %v", c.body, n, got)
			}
		}
	}
}
