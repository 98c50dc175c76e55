package templates_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/templates"
)

// A free-text field can make an SMS any length; lint only sees the
// samples. Render holds every SMS to its rule's max_segments by shortening
// the free text, and refuses what still cannot fit.
func TestSMSBudgetAtRender(t *testing.T) {
	s := embedded(t)
	long := strings.Repeat("The studio flooded overnight and the bikes are being checked. ", 16)[:960]
	tests := []struct {
		name      string
		edit      func(ev map[string]any)
		budget    int
		encoding  string
		shortened []string
		keeps     []string // text the message must still hold
	}{
		{"short reason fits as it is", func(map[string]any) {}, 3, templates.GSM7, nil, []string{"(Instructor unwell)"}},
		{"960-character reason", func(ev map[string]any) { at(ev, "data")["reason"] = long }, 3, templates.GSM7,
			[]string{"reason"}, []string{"(The studio flooded overnight", "...)", "Your booking is cancelled"}},
		{"long reason in UCS-2 (a name outside GSM-7)", func(ev map[string]any) {
			at(ev, "data")["reason"] = long
			at(ev, "data")["attendees"].([]any)[2].(map[string]any)["name"] = "Zoë Ōta"
		}, 3, templates.UCS2, []string{"reason"}, []string{"...)"}},
		{"long class name, short reason: the long one is cut", func(ev map[string]any) {
			at(ev, "data.class")["name"] = strings.Repeat("Vinyasa Flow ", 40)
		}, 3, templates.GSM7, []string{"class_name"}, []string{"(Instructor unwell)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := sample(t, "gym.class.cancelled", "three-attendees.json")
			tt.edit(ev)
			smsSent := 0
			for _, n := range only(plan(t, s, decode(t, ev)), notification.SMS) {
				m := render(t, s, &n)
				info := templates.SMS(m.Text)
				if info.Segments > tt.budget {
					t.Errorf("%s: %d segments (%d %s characters), over the budget of %d:\n%s", n.RecipientID, info.Segments, info.Units, info.Encoding, tt.budget, m.Text)
				}
				if n.Locale == "en-IE" {
					smsSent++
					if info.Encoding != tt.encoding {
						t.Errorf("encoding %s, want %s", info.Encoding, tt.encoding)
					}
					if strings.Join(m.Shortened, ",") != strings.Join(tt.shortened, ",") {
						t.Errorf("Shortened = %v, want %v", m.Shortened, tt.shortened)
					}
					for _, k := range tt.keeps {
						if !strings.Contains(m.Text, k) {
							t.Errorf("text does not hold %q:\n%s", k, m.Text)
						}
					}
					if i := strings.Index(m.Text, "...)"); len(tt.shortened) > 0 && i > 0 {
						words := strings.Fields(m.Text[:i])
						if last := words[len(words)-1]; !strings.Contains(" "+long+" "+strings.Repeat("Vinyasa Flow ", 2), " "+last+" ") {
							t.Errorf("cut inside a word: %q...", last)
						}
					}
					if len(tt.shortened) > 0 && info.Units < templates.SMSBudget(info.Encoding, tt.budget)-25 {
						t.Errorf("shortened to %d of %d units: more cut than needed:\n%s", info.Units, templates.SMSBudget(info.Encoding, tt.budget), m.Text)
					}
				}
			}
			if smsSent != 1 {
				t.Fatalf("%d SMS for the en-IE attendee, want 1", smsSent)
			}
		})
	}
}

// When shortening cannot make an SMS fit, the message is refused,
// permanently, with its own reason: never sent at a multiple of the cost.
func TestSMSOverBudgetIsRefused(t *testing.T) {
	tests := []struct {
		name, shorten, template string
		want                    string
		branch, long            string // branch_name, and how the refusal names it
	}{
		{"data that may not be shortened over budget", "[membership_plan]", "Your {{.membership_plan}} plan ends soon. Renew at {{.branch_name}}.",
			"with membership_plan shortened to an ellipsis", strings.Repeat("Shoreditch High Street ", 10), "branch_name (230 characters)"},
		{"nothing may be shortened", "[]", "Renew at {{.branch_name}}.", "nothing to shorten",
			strings.Repeat("Shoreditch High Street ", 10), "branch_name (230 characters)"},
		// The text is sent with typographic punctuation in ASCII; the
		// value is found in it all the same (a review's find).
		{"typographic punctuation in the long value", "[]", "Renew at {{.branch_name}}.", "nothing to shorten",
			strings.Repeat("O’Brien’s — Street ", 12), "branch_name (228 characters)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree := newTypeTree()
			d := "gym.membership.expiring/"
			tree[d+"routing.yaml"] = strings.Replace(tree[d+"routing.yaml"], "    channels: [email, sms]\n",
				"    channels: [email, sms]\n    sms:\n      max_segments: 1\n      shorten: "+tt.shorten+"\n", 1)
			tree[d+"sms.en.txt"] = tt.template
			s, err := templates.LoadDir(writeTree(t, tree))
			if err != nil {
				t.Fatal(err)
			}
			ev := sample2(t, newTypeEvent)
			at(ev, "data.branch")["name"] = tt.branch
			ns := only(plan(t, s, decode(t, ev)), notification.SMS)
			if len(ns) != 1 {
				t.Fatalf("%d SMS planned", len(ns))
			}
			_, err = s.Render(&ns[0])
			var fe *failure.Error
			if !errors.As(err, &fe) || fe.Class != failure.Permanent || fe.Reason != failure.ReasonOverBudget || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Render = %v, want permanent over_budget saying %q", err, tt.want)
			}
			// The field that put it over is named, though the list may
			// not shorten it (an outside tester's 100 KB name was refused
			// naming only the fields that were not the cause).
			if want := "in the message and not in sms.shorten: " + tt.long; !strings.Contains(err.Error(), want) {
				t.Errorf("Render = %v, want it to say %q", err, want)
			}
		})
	}
}

// sample2 parses an event given as JSON text into generic JSON.
func sample2(t testing.TB, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// FuzzSMSBudget feeds arbitrary free text and names into a class
// cancellation SMS: whatever the data, a rendered SMS is within its
// budget, or the render fails permanently (over_budget, render).
func FuzzSMSBudget(f *testing.F) {
	f.Add("Instructor unwell", "Spin 45", "Zoë")
	f.Add(strings.Repeat("x ", 600), strings.Repeat("💪", 90), "Łukasz")
	f.Add("", "\u00a0\u2026", "")
	s := embedded(f)
	n := only(plan(f, s, decode(f, sample(f, "gym.class.cancelled", "three-attendees.json"))), notification.SMS)[0]
	f.Fuzz(func(t *testing.T, reason, class, name string) {
		n := n
		n.Data = with(n.Data, "reason", reason, "class_name", class, "recipient_first_name", name)
		m, err := s.Render(&n)
		if err != nil {
			if failure.ClassOf(err) != failure.Permanent {
				t.Fatalf("Render = %v, want a permanent error", err)
			}
			return
		}
		if info := templates.SMS(m.Text); info.Segments > 3 {
			t.Fatalf("%d segments over the budget of 3: %q", info.Segments, m.Text)
		}
	})
}

// TestSendTimeLimits: data long enough to break a provider's or a
// standard's limit is cut at send time, not refused by the provider. The
// outside tester's event with a 5,000-character location lost its push
// (FCM: "Message is too big"), and one with a 200,000-character class name
// made a 200,003-byte Subject line (RFC 5322: 998).
// (The test's JSON escapes < and &, so plain words make the long values.)
func TestSendTimeLimits(t *testing.T) {
	s := embedded(t)
	ev := sample(t, "gym.booking.confirmed", "member-en.json")
	at(ev, "data.class")["location"] = strings.Repeat("Studio 2, ", 500)
	at(ev, "data.class")["name"] = strings.Repeat("Spin ", 20_000)
	at(ev, "data.member")["name"] = strings.Repeat("Ann ", 10_000)
	ns := plan(t, s, decode(t, ev))
	var email, push int
	for i := range ns {
		n := &ns[i]
		m := render(t, s, n)
		switch n.Channel {
		case notification.Email:
			email++
			if c := utf8.RuneCountInString(m.Subject); c > 150 {
				t.Errorf("subject of %d characters", c)
			}
			if c := utf8.RuneCountInString(m.ToName); c > 64 {
				t.Errorf("display name of %d characters", c)
			}
			if !slices.Contains(m.Shortened, "subject") || !slices.Contains(m.Shortened, "recipient_name") {
				t.Errorf("Shortened = %v, want subject and recipient_name", m.Shortened)
			}
		case notification.Push:
			push++
			if b := templates.PushPayloadBytes(m); b > 4096 {
				t.Errorf("push payload of %d bytes", b)
			}
			if c := utf8.RuneCountInString(m.Title); c > 65 {
				t.Errorf("push title of %d characters", c)
			}
			if c := utf8.RuneCountInString(m.Text); c > 240 {
				t.Errorf("push body of %d characters", c)
			}
			if !strings.HasSuffix(m.Text, "…") {
				t.Errorf("push body %q does not end in an ellipsis", m.Text)
			}
		}
	}
	if email == 0 || push == 0 {
		t.Fatalf("planned %d emails and %d pushes, want both", email, push)
	}
}
