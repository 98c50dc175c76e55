package templates

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
)

// Push limits. Two kinds:
//
//   - The payload is a hard limit: FCM rejects a message whose payload is
//     over 4096 bytes (Firebase, "About FCM messages": "the maximum payload
//     for both message types is 4096 bytes"), and APNs rejects a remote
//     notification over 4 KB (Apple, "Sending notification requests to
//     APNs"). herald checks title, body and data as JSON against it.
//   - The title and body lengths are display limits: past them the
//     notification shade truncates, so the member reads another message
//     than the one written. No platform documents an exact number (it
//     depends on the screen and the font); Android's commonly given limits
//     are about 65 characters of title and 240 of expanded body, and iOS
//     shows about 178 characters (four lines) of body on the lock screen.
//     herald holds templates to the Android figures.
const (
	maxPushTitle   = 65
	maxPushBody    = 240
	maxPushPayload = 4096
)

// hostile is appended to every free-text value when lint renders a sample
// again to prove that data cannot inject markup into an email's HTML or a
// header line into its subject.
const (
	hostileMarkup = "<hx-probe>"
	hostile       = hostileMarkup + `"'&` + "\r\nBcc: probe@example.invalid"
)

// Sample is one sample event of an event type, as validated by Load.
type Sample struct {
	File  string // path in the tree: "gym.booking.confirmed/samples/member-en.json"
	Name  string // file name without .json: "member-en"
	Event *events.Event
	Raw   []byte
}

// Samples returns eventType's sample events, sorted by file name.
func (s *Set) Samples(eventType string) []Sample {
	return append([]Sample(nil), s.samples[eventType]...)
}

// Locales returns the locales that have templates for template on ch,
// sorted; nil when no rule sends ch with template.
func (s *Set) Locales(template string, ch notification.Channel) []string {
	r := s.rules[ruleKey{template, ch}]
	if r == nil {
		return nil
	}
	return sortedKeys(r.files[ch])
}

// TemplateFiles returns the paths of the files template renders ch from in
// locale, as Problem.File names them.
func (s *Set) TemplateFiles(template string, ch notification.Channel, locale string) []string {
	r := s.rules[ruleKey{template, ch}]
	if r == nil {
		return nil
	}
	var out []string
	for _, p := range channelParts(ch) {
		out = append(out, path.Join(r.eventType, fileName(r, ch, locale, p)))
	}
	return out
}

// checkSamples plans every sample of t and renders each notification in
// every locale its channel has, checking the output (lintMessage) and, for
// email, that hostile data stays escaped; and checks that every rule and
// channel is exercised by some sample.
func (s *Set) checkSamples(fsys fs.FS, t *eventType, probs *problems) {
	dir := path.Join(t.name, "samples")
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil || len(entries) == 0 {
		probs.add(t.name, "has no samples/*.json; every event type needs sample events to validate against")
		return
	}
	exercised := map[ruleKey]bool{}
	for _, e := range entries {
		file := path.Join(dir, e.Name())
		if ignored(e.Name()) {
			continue
		}
		if isDir(fsys, file, e) || !strings.HasSuffix(e.Name(), ".json") {
			probs.add(file, "is not a .json sample event")
			continue
		}
		b, err := fs.ReadFile(fsys, file)
		if err != nil {
			probs.add(file, "%v", err)
			continue
		}
		ev, err := events.Decode(b)
		if err != nil {
			probs.add(file, "does not decode: %v", unwrapFailure(err))
			continue
		}
		if ev.Type != t.name {
			probs.add(file, "has type %q, want %q (its folder)", ev.Type, t.name)
			continue
		}
		ns, err := s.Plan(ev, ev.Time)
		if err != nil {
			probs.add(file, "does not plan: %v", unwrapFailure(err))
			continue
		}
		s.samples[t.name] = append(s.samples[t.name], Sample{File: file, Name: strings.TrimSuffix(e.Name(), ".json"), Event: ev, Raw: b})
		done := map[string]bool{} // one render per recipient, channel and template is enough
		for i := range ns {
			n := ns[i]
			exercised[ruleKey{n.Template, n.Channel}] = true
			if k := n.Template + "\x00" + string(n.Channel) + "\x00" + n.RecipientID; done[k] {
				continue
			} else {
				done[k] = true
			}
			r := s.rules[ruleKey{n.Template, n.Channel}]
			for _, locale := range sortedKeys(r.files[n.Channel]) {
				n.Locale = locale
				m, err := s.render(&n, false)
				if err != nil {
					s.renderProblem(file, r, n.Channel, locale, err, probs)
					continue
				}
				lintMessage(file, b, r, r.files[n.Channel][locale], &n, m, probs)
				if n.Channel == notification.Email {
					s.checkEscaping(file, r, n, probs)
				}
			}
		}
	}
	for _, r := range t.rules {
		for _, ch := range r.channels {
			if !exercised[ruleKey{r.template, ch}] {
				why := ""
				if r.expires != nil && expiredInEvery(r.expires, s.samples[t.name]) {
					why = fmt.Sprintf(" (its expires: %s has passed at every sample's time, so none is planned)", r.expires)
				}
				probs.at(path.Join(t.name, "routing.yaml"), r.line, 0, "", "no sample in samples/ makes %s send %s%s; add one that does", r.label(), ch, why)
			}
		}
	}
}

// expiredInEvery reports whether expires has passed at the time of every
// one of samples (at least one), which is why a rule with it plans nothing
// for them.
func expiredInEvery(expires *TimeRef, samples []Sample) bool {
	for _, sm := range samples {
		at, _, err := expires.At(sm.Event, "expires", "expires at")
		if err != nil || at.After(sm.Event.Time) {
			return false
		}
	}
	return len(samples) > 0
}

// renderProblem reports a failed render at the template position the error
// names, or at the rule when the failure is in routing (push.data, ics).
func (s *Set) renderProblem(sample string, r *rule, ch notification.Channel, locale string, err error, probs *problems) {
	var re *renderError
	if errors.As(err, &re) && re.file != "" {
		probs.at(re.file, re.line, re.col, sample, "with %s: %s", relSample(sample), re.what)
		return
	}
	probs.at(path.Join(r.eventType, "routing.yaml"), 0, 0, sample, "%s in %s with %s: %v", ch, locale, relSample(sample), unwrapFailure(err))
}

// lintMessage holds one rendered sample to its channel's limits. raw is the
// sample's JSON, to point at data that causes a problem.
func lintMessage(samplePath string, raw []byte, r *rule, l *localized, n *notification.Notification, m *channels.Message, probs *problems) {
	file := func(part string) string { return path.Join(r.eventType, fileName(r, m.Channel, l.locale, part)) }
	sample := relSample(samplePath)
	whole := func(part, format string, args ...any) {
		probs.at(file(part), 1, 0, samplePath, "with %s: %s", sample, fmt.Sprintf(format, args...))
	}
	switch m.Channel {
	case notification.Email:
		if m.Subject == "" {
			whole(partSubject, "renders an empty subject")
		}
		if strings.TrimSpace(m.Text) == "" {
			whole(partText, "renders an empty text part; every email needs one (spam filters and screen readers)")
		}
		if strings.TrimSpace(m.HTML) == "" {
			whole(partHTML, "renders an empty HTML part")
		}
	case notification.SMS:
		info := SMS(m.Text)
		switch {
		case info.Units == 0:
			whole(partText, "renders an empty SMS")
		case info.Encoding == UCS2 && !r.smsUnicode:
			what := fmt.Sprintf("%s (%U) is not in GSM-7: it turns the whole SMS into UCS-2, 70 characters a segment instead of 160 "+
				"(this one: %d characters, %d segment(s), budget %d)",
				strconv.QuoteRune(info.NonGSM), info.NonGSM, info.Units, info.Segments, r.maxSegments)
			const fromData = "; data such as names and places can hold such characters: if that is expected, set sms.unicode: true in routing.yaml and budget for it"
			if line, col, ok := position(l.src[partText], info.NonGSM); ok {
				probs.at(file(partText), line, col, samplePath, "with %s: %s; replace it, or set sms.unicode: true in routing.yaml if the language needs it", sample, what)
			} else if line, col, ok := position(string(raw), info.NonGSM); ok {
				probs.at(samplePath, line, col, samplePath, "rendered into %s: %s%s", file(partText), what, fromData)
			} else {
				probs.at(file(partText), 1, 0, samplePath, "with %s: data value %s: %s%s", sample, dataKeyWith(n.Data, info.NonGSM), what, fromData)
			}
		case info.Segments > r.maxSegments && r.smsUnicode && info.Encoding == UCS2:
			whole(partText, "renders %d UCS-2 characters: %d segments, over the budget of %d (%d characters); shorten the copy or raise sms.max_segments in routing.yaml",
				info.Units, info.Segments, r.maxSegments, SMSBudget(UCS2, r.maxSegments))
		case info.Segments > r.maxSegments:
			whole(partText, "renders %d %s characters: %d segments, over the budget of %d (%d characters); shorten the copy or raise sms.max_segments in routing.yaml",
				info.Units, info.Encoding, info.Segments, r.maxSegments, SMSBudget(info.Encoding, r.maxSegments))
		}
	case notification.Push:
		if c := utf8.RuneCountInString(m.Title); c > maxPushTitle || c == 0 {
			whole(partTitle, "renders %d characters; want 1 to %d (longer titles are cut off on Android)", c, maxPushTitle)
		}
		if c := utf8.RuneCountInString(m.Text); c > maxPushBody || c == 0 {
			whole(partBody, "renders %d characters; want 1 to %d (longer bodies are cut off)", c, maxPushBody)
		}
		if b := PushPayloadBytes(m); b > maxPushPayload {
			whole(partBody, "the push payload (title, body and push.data) is %d bytes; FCM and APNs reject more than %d", b, maxPushPayload)
		}
	default:
		// A channel without features of its own: each part of its
		// descriptor must render something, within the part's limit.
		for _, p := range channels.Lookup(m.Channel).Parts {
			text := PartText(m, p.Field)
			if c := utf8.RuneCountInString(strings.TrimSpace(text)); c == 0 || p.Limit > 0 && c > p.Limit {
				want := "something"
				if p.Limit > 0 {
					want = fmt.Sprintf("1 to %d characters", p.Limit)
				}
				whole(p.File, "renders %d characters; want %s", c, want)
			}
		}
	}
}

// PartText is the rendered text of field f of m.
func PartText(m *channels.Message, f channels.Field) string { return *partField(m, f) }

// PushPayloadBytes is the size of a push message's title, body and data as
// the JSON a provider receives; FCM and APNs refuse more than 4096 bytes.
func PushPayloadBytes(m *channels.Message) int {
	b, _ := json.Marshal(struct {
		Notification struct {
			Title string `json:"title"`
			Body  string `json:"body"`
		} `json:"notification"`
		Data map[string]string `json:"data,omitempty"`
	}{struct {
		Title string `json:"title"`
		Body  string `json:"body"`
	}{m.Title, m.Text}, m.Data})
	return len(b)
}

// checkEscaping renders an email again with markup and a header line
// appended to every free-text value, and reports data that reaches the
// HTML unescaped or the subject as a second line. html/template escapes by
// context, so this guards against a change that would bypass it.
func (s *Set) checkEscaping(sample string, r *rule, n notification.Notification, probs *problems) {
	n.Data = hostileData(n.Data)
	m, err := s.Render(&n)
	if err != nil {
		return // the real sample rendered; a template may test a value's exact text
	}
	for _, p := range escapingProblems(m) {
		part := partHTML
		if strings.HasPrefix(p, "subject") {
			part = partSubject
		}
		probs.at(path.Join(r.eventType, fileName(r, n.Channel, m.Locale, part)), 1, 0, sample, "with %s made hostile: %s", relSample(sample), p)
	}
}

// escapingProblems inspects an email rendered from hostileData.
func escapingProblems(m *channels.Message) []string {
	var out []string
	if strings.Contains(m.HTML, hostileMarkup) {
		out = append(out, "data reaches the HTML unescaped ("+hostileMarkup+" appears as markup); never build markup from data")
	}
	if strings.ContainsAny(m.Subject, "\r\n") {
		out = append(out, "subject spans several lines, so data could inject a header")
	}
	return out
}

// hostileData appends hostile to every value that is free text: not a
// time, number, boolean, time zone or locale, which templates may feed to
// functions that would reject it.
func hostileData(d notification.Data) notification.Data {
	out := make([]notification.Field, 0, d.Len())
	for k, v := range d.All() {
		switch {
		case v == "" || v == "true" || v == "false" || strings.HasSuffix(k, "time_zone") || strings.HasSuffix(k, "locale"):
		case isNumber(v) || isTime(v):
		default:
			v += hostile
		}
		out = append(out, notification.Field{Key: k, Value: v})
	}
	return notification.NewData(out)
}

func isNumber(v string) bool {
	_, err := strconv.ParseFloat(v, 64)
	return err == nil
}

func isTime(v string) bool {
	_, err := time.Parse(time.RFC3339, v)
	return err == nil
}

// relSample names a sample relative to its event type folder, which the
// problem's file already names.
func relSample(p string) string {
	if i := strings.IndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// position finds the first r in src as a 1-based line and column
// (in characters).
func position(src string, r rune) (line, col int, ok bool) {
	line, col = 1, 0
	for _, c := range src {
		col++
		if c == r {
			return line, col, true
		}
		if c == '\n' {
			line, col = line+1, 0
		}
	}
	return 0, 0, false
}

// dataKeyWith names the data key whose value holds r.
func dataKeyWith(d notification.Data, r rune) string {
	for k, v := range d.All() { // in key order
		if strings.ContainsRune(v, r) {
			return k
		}
	}
	return "(unknown)"
}

// unwrapFailure drops the class and reason a failure.Error prints, which
// mean nothing to a template author.
func unwrapFailure(err error) error {
	var fe *failure.Error
	if errors.As(err, &fe) && fe.Err != nil {
		return fe.Err
	}
	return err
}
