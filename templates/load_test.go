package templates_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/templates"
)

const newType = "gym.membership.expiring"

// newTypeTree is a complete folder for an event type herald has no Go code
// for, with two rules on the email channel (so one is named) and an optional
// recipient path.
func newTypeTree() map[string]string {
	d := newType + "/"
	return map[string]string{
		d + "routing.yaml": `description: A membership runs out soon.
notifications:
  - recipients: member
    channels: [email, sms]
  - name: front-desk
    recipients: branch.front_desk
    optional: true
    channels: [email]
`,
		d + "email.en.subject.txt":            `Your {{.membership_plan}} membership ends {{.membership_date}}`,
		d + "email.en.txt":                    "Hi {{default \"there\" .recipient_first_name}}, renew at {{.branch_name}}.\n",
		d + "email.en.html":                   `<p>Hi {{.recipient_name}}, renew at {{.branch_name}}.</p>`,
		d + "sms.en.txt":                      `{{upper .membership_plan}} ends {{.membership_date}}. Renew at {{.branch_name}}.`,
		d + "front-desk.email.en.subject.txt": `{{.member_name}}'s membership ends {{.membership_date}}`,
		d + "front-desk.email.en.txt":         "{{.member_name}} ({{.member_id}}) has {{.membership_days_left}} {{plural .membership_days_left \"day\" \"days\"}} left.\n",
		d + "front-desk.email.en.html":        `<p>{{.member_name}} has {{.membership_days_left}} {{plural .membership_days_left "day" "days"}} left.</p>`,
		d + "samples/one.json":                newTypeEvent,
	}
}

const newTypeEvent = `{
  "specversion": "1.0", "id": "evt_m1", "source": "membership-service",
  "type": "gym.membership.expiring", "time": "2026-11-20T09:00:00Z",
  "data": {
    "membership": {"plan": "Gold", "days_left": 1, "starts_at": "2026-12-01T00:00:00Z"},
    "branch": {"name": "Shoreditch", "front_desk": [{"id": "staff_1", "name": "Sam Front", "email": "desk@example.com"}]},
    "member": {"id": "mem_1", "name": "Emma Clarke", "email": "emma@example.com", "phone": "+447700900123", "time_zone": "Europe/London"}
  }
}`

func TestNewEventTypeNeedsNoGoCode(t *testing.T) {
	dir := writeTree(t, newTypeTree())
	s, err := templates.Load(os.DirFS(dir))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !s.Known(newType) || len(s.EventTypes()) != 1 {
		t.Fatalf("EventTypes = %v", s.EventTypes())
	}
	ev, err := events.Decode([]byte(newTypeEvent))
	if err != nil {
		t.Fatal(err)
	}
	ns := plan(t, s, ev)
	got := map[string]string{}
	for _, n := range ns {
		m := render(t, s, &n)
		got[n.Template+" "+string(n.Channel)+" "+n.To] = m.Subject + m.Text
	}
	want := map[string]string{
		newType + " email emma@example.com":            "Your Gold membership ends Tuesday 1 DecemberHi Emma, renew at Shoreditch.\n",
		newType + " sms +447700900123":                 "GOLD ends Tuesday 1 December. Renew at Shoreditch.",
		newType + "/front-desk email desk@example.com": "Emma Clarke's membership ends Tuesday 1 DecemberEmma Clarke (mem_1) has 1 day left.\n",
	}
	if len(got) != len(want) {
		t.Fatalf("planned %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s rendered %q, want %q", k, got[k], v)
		}
	}

	// The optional recipients may be absent; the required ones may not.
	var raw map[string]any
	if err := json.Unmarshal([]byte(newTypeEvent), &raw); err != nil {
		t.Fatal(err)
	}
	delete(at(raw, "data.branch"), "front_desk")
	if got := channelCount(plan(t, s, decode(t, raw))); got != "email:1 sms:1" {
		t.Errorf("without front_desk planned %q", got)
	}
	delete(at(raw, "data"), "member")
	if _, err := s.Plan(decode(t, raw), planTime); err == nil || !strings.Contains(err.Error(), "member") {
		t.Errorf("without member: %v, want an error naming it", err)
	} else if c := failureClass(err); c != "poison" {
		t.Errorf("without member: class %s, want poison", c)
	}
}

// TestDerivedValuesAndFuncs pins the render-time data and template
// functions in both shipped languages.
func TestDerivedValuesAndFuncs(t *testing.T) {
	tree := newTypeTree()
	d := newType + "/"
	body := `{{.membership_date}}|{{.membership_start_time}}|{{.local_time_zone}}|` +
		`{{date "Mon 2 Jan 15:04 MST" .membership_starts_at "America/New_York"}}|` +
		`{{lower "ABC"}}|{{plural "1" "x" "xs"}}|{{plural "2" "x" "xs"}}|{{default "d" ""}}|{{default "d" "v"}}|` +
		`[{{index . "no_such_key"}}]`
	for _, locale := range []string{"en", "es"} {
		tree[d+"sms."+locale+".txt"] = body
	}
	tree["locales/es.yaml"] = mustRead(t, "locales/es.yaml")
	s, err := templates.Load(os.DirFS(writeTree(t, tree)))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := events.Decode([]byte(newTypeEvent))
	if err != nil {
		t.Fatal(err)
	}
	n := only(plan(t, s, ev), notification.SMS)[0]
	for locale, want := range map[string]string{
		"en":    "Tuesday 1 December|00:00|Europe/London|Mon 30 Nov 19:00 EST|abc|x|xs|d|v|[]",
		"es-AR": "martes 1 de diciembre|00:00|Europe/London|lun 30 nov 19:00 EST|abc|x|xs|d|v|[]",
	} {
		n.Locale = locale
		if got := render(t, s, &n).Text; got != want {
			t.Errorf("%s: %q\nwant %q", locale, got, want)
		}
	}
	// Without the recipient's zone, a class/top-level zone or UTC is used.
	n.Locale = "en"
	n.Data = with(n.Data, "recipient_time_zone", "")
	if got := render(t, s, &n).Text; !strings.HasPrefix(got, "Tuesday 1 December|00:00|UTC|") {
		t.Errorf("without a zone: %q", got)
	}
	n.Data = with(n.Data, "recipient_time_zone", "America/Los_Angeles")
	if got := render(t, s, &n).Text; !strings.HasPrefix(got, "Monday 30 November|16:00|America/Los_Angeles|") {
		t.Errorf("Los Angeles: %q", got)
	}
}

func mustRead(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLoadRejects(t *testing.T) {
	d := newType + "/"
	for _, tc := range []struct {
		name string
		edit map[string]string // path → content; "" deletes
		want []string          // substrings of the error
	}{
		{"broken template", map[string]string{d + "email.en.txt": "Hi {{.recipient_name"},
			[]string{d + "email.en.txt:1: does not parse: unclosed action"}},
		{"broken html", map[string]string{d + "email.en.html": "<p>{{if .x}}</p>"},
			[]string{d + "email.en.html:1: does not parse"}},
		{"unknown function", map[string]string{d + "sms.en.txt": "{{shout .branch_name}}"},
			[]string{d + "sms.en.txt:1: does not parse", `"shout" not defined`}},
		{"sample lacks a key", map[string]string{d + "sms.en.txt": "{{.membership_colour}}"},
			[]string{d + `sms.en.txt:1:2: with samples/one.json: missing data key "membership_colour"`}},
		{"no en", map[string]string{d + "sms.en.txt": "", d + "sms.es.txt": "hola"},
			[]string{d + "routing.yaml:3: rule 1 sends sms but has no en templates (sms.en.txt)"}},
		{"incomplete locale", map[string]string{d + "email.es.txt": "hola"},
			[]string{"locale es of email is incomplete: missing email.es.subject.txt, email.es.html"}},
		{"no day names", map[string]string{d + "sms.fr.txt": "salut"},
			[]string{d + "sms.fr.txt: no locales/fr.yaml"}},
		{"non-canonical locale", map[string]string{d + "sms.es-mx.txt": "hola"},
			[]string{`write locale "es-mx" as "es-MX"`}},
		{"stray file", map[string]string{d + "emial.en.txt": "x"},
			[]string{d + "emial.en.txt: is not a template file"}},
		{"file for a channel no rule sends", map[string]string{d + "push.en.title.txt": "x"},
			[]string{d + "push.en.title.txt: no unnamed rule in routing.yaml sends push"}},
		{"file for an unknown rule", map[string]string{d + "staff.email.en.txt": "x"},
			[]string{`no rule named "staff"`}},
		{"routing typo", map[string]string{d + "routing.yaml": "notifications:\n  - recipient: member\n    channels: [sms]\n"},
			[]string{d + "routing.yaml:2: unknown field recipient"}},
		{"bad channel", map[string]string{d + "routing.yaml": "notifications:\n  - recipients: member\n    channels: [fax]\n"},
			[]string{d + `routing.yaml:2: rule 1: channel "fax" is not one of email, sms, push`}},
		{"two unnamed rules on a channel", map[string]string{d + "routing.yaml": "notifications:\n  - recipients: member\n    channels: [email, sms]\n  - recipients: member\n    channels: [sms]\n"},
			[]string{d + "routing.yaml:4: rule 2: rule 1 already sends sms"}},
		{"ics on a rule without email", map[string]string{d + "routing.yaml": "notifications:\n  - recipients: member\n    channels: [sms]\n    email: {attach: ics}\n"},
			[]string{"has email options but does not send email"}},
		{"no routing", map[string]string{d + "routing.yaml": ""},
			[]string{newType + ": has no routing.yaml"}},
		{"no samples", map[string]string{d + "samples/one.json": ""},
			[]string{newType + ": has no samples"}},
		{"sample of another type", map[string]string{d + "samples/one.json": strings.Replace(newTypeEvent, newType, "gym.other", 1)},
			[]string{`has type "gym.other"`}},
		{"sample does not decode", map[string]string{d + "samples/one.json": "{"},
			[]string{d + "samples/one.json: does not decode"}},
		{"rule no sample exercises", map[string]string{d + "samples/one.json": strings.Replace(newTypeEvent, `"front_desk"`, `"back_office"`, 1)},
			[]string{d + `routing.yaml:5: no sample in samples/ makes rule "front-desk" send email`}},
		{"sms over budget", map[string]string{d + "sms.en.txt": strings.Repeat("x", 161)},
			[]string{d + "sms.en.txt:1: with samples/one.json: renders 161 GSM-7 characters: 2 segments, over the budget of 1 (160 characters)"}},
		{"sms outside gsm-7", map[string]string{d + "sms.en.txt": "Ready? 💪"},
			[]string{d + `sms.en.txt:1:8: with samples/one.json: '💪' (U+1F4AA) is not in GSM-7: it turns the whole SMS into UCS-2`}},
		{"push title too long", map[string]string{
			d + "routing.yaml":      "notifications:\n  - recipients: member\n    channels: [push]\n",
			d + "push.en.title.txt": strings.Repeat("t", 66), d + "push.en.body.txt": "b",
			d + "email.en.subject.txt": "", d + "email.en.txt": "", d + "email.en.html": "", d + "sms.en.txt": "",
			d + "front-desk.email.en.subject.txt": "", d + "front-desk.email.en.txt": "", d + "front-desk.email.en.html": "",
			d + "samples/one.json": strings.Replace(newTypeEvent, `"time_zone": "Europe/London"`, `"push_tokens": ["t"]`, 1)},
			[]string{d + "push.en.title.txt:1: with samples/one.json: renders 66 characters; want 1 to 65"}},
		{"empty html part", map[string]string{d + "email.en.html": "{{/* later */}}"},
			[]string{d + "email.en.html:1: with samples/one.json: renders an empty HTML part"}},
		{"gsm-7 character from the sample data", map[string]string{d + "samples/one.json": strings.Replace(newTypeEvent, `"name": "Shoreditch"`, `"name": "Beşiktaş"`, 1)},
			[]string{d + "samples/one.json:6:", `rendered into ` + d + `sms.en.txt: 'ş' (U+015F) is not in GSM-7`}},
		{"unicode allowed, but over its budget", map[string]string{
			d + "routing.yaml": "notifications:\n  - recipients: member\n    channels: [email, sms]\n    sms: {unicode: true}\n  - name: front-desk\n    recipients: branch.front_desk\n    optional: true\n    channels: [email]\n",
			d + "sms.en.txt":   strings.Repeat("ж", 71)},
			[]string{d + "sms.en.txt:1: with samples/one.json: renders 71 UCS-2 characters: 2 segments, over the budget of 1 (70 characters)"}},
		{"push payload over 4096 bytes", map[string]string{
			d + "routing.yaml":      "notifications:\n  - recipients: member\n    channels: [push]\n    push: {data: [membership_terms]}\n",
			d + "push.en.title.txt": "Renew", d + "push.en.body.txt": "Your plan ends soon.",
			d + "email.en.subject.txt": "", d + "email.en.txt": "", d + "email.en.html": "", d + "sms.en.txt": "",
			d + "front-desk.email.en.subject.txt": "", d + "front-desk.email.en.txt": "", d + "front-desk.email.en.html": "",
			d + "samples/one.json": strings.Replace(strings.Replace(newTypeEvent, `"time_zone": "Europe/London"`, `"push_tokens": ["t"]`, 1),
				`"plan": "Gold"`, `"plan": "Gold", "terms": "`+strings.Repeat("t", 4100)+`"`, 1)},
			[]string{d + "push.en.body.txt:1: with samples/one.json: the push payload (title, body and push.data) is 4254 bytes; FCM and APNs reject more than 4096"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree := newTypeTree()
			for p, c := range tc.edit {
				if c == "" {
					delete(tree, p)
				} else {
					tree[p] = c
				}
			}
			if _, ok := tree[d+"routing.yaml"]; !ok {
				tree[d+"keep.md"] = "a folder without routing"
			}
			s, err := templates.Load(os.DirFS(writeTree(t, tree)))
			if err == nil {
				t.Fatalf("Load accepted it (%v)", s.EventTypes())
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	tree := newTypeTree()
	tree[newType+"/email.en.txt"] = "{{"
	tree[newType+"/sms.en.txt"] = "{{end}}"
	_, err := templates.Load(os.DirFS(writeTree(t, tree)))
	if err == nil || !strings.Contains(err.Error(), "email.en.txt") || !strings.Contains(err.Error(), "sms.en.txt") {
		t.Fatalf("want both files named, got %v", err)
	}
}

func TestLoadEmptyTree(t *testing.T) {
	if _, err := templates.Load(os.DirFS(t.TempDir())); err == nil {
		t.Fatal("Load of an empty tree succeeded")
	}
}

// TestLoadSourceTree loads the templates directory itself, as
// HERALD_TEMPLATES_DIR pointing at a checkout would.
func TestLoadSourceTree(t *testing.T) {
	s, err := templates.Load(os.DirFS("."))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.EventTypes()) != len(embedded(t).EventTypes()) {
		t.Fatalf("source tree has %v", s.EventTypes())
	}
}
