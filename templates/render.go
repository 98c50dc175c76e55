package templates

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
)

// Render produces n's message for its channel, in the first of the
// recipient's locale, its parents, its base language and en that the rule
// has templates for. The templates see n.Data plus the derived values
// (README.md); n is not modified.
//
// Every error is permanent (failure.ReasonRender): the same notification
// renders the same way every time. Messages name the template file and, for
// missing data, the key. An SMS is held to its rule's sms.max_segments
// (fitSMS): free text is shortened to fit, and a message that still cannot
// fit is permanent failure.ReasonOverBudget.
func (s *Set) Render(n *notification.Notification) (*channels.Message, error) {
	return s.render(n, true)
}

// render is Render; lint passes fit false to see the samples as they are,
// since copy that only fits when shortened is a problem to report.
func (s *Set) render(n *notification.Notification, fit bool) (*channels.Message, error) {
	r := s.rules[ruleKey{n.Template, n.Channel}]
	if r == nil {
		return nil, failure.Errorf(failure.Permanent, failure.ReasonRender,
			"no routing rule sends %s with template %q", n.Channel, n.Template)
	}
	l := r.resolve(n.Channel, n.Locale)

	d := viewPool.Get().(*view)
	defer func() {
		d.reset()
		viewPool.Put(d)
	}()
	d.fill(n.Data, l.lang)
	eventTime, _ := d.lookup("event_time") // the data's, as before: never derived
	toName, _ := d.lookup("recipient_name")

	m := &channels.Message{
		NotificationID: n.ID,
		EventID:        n.EventID,
		EventType:      n.EventType,
		EventTime:      eventTime,
		Channel:        n.Channel,
		To:             n.To,
		ToName:         toName,
		Locale:         l.locale,
		Priority:       n.Priority,
		RecipientID:    n.RecipientID,
		Category:       n.Category,
	}
	if c := s.Category(n.Category); c != nil && !c.Required {
		m.Unsubscribable = true // one-click unsubscribe: never for a required category
	}
	b := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(b)
	// run renders a part into b; its bytes are valid until the next run.
	run := func(pp *parsedPart) ([]byte, error) {
		b.Reset()
		if err := pp.execute(b, d); err != nil {
			return nil, failure.Perm(failure.ReasonRender, execError(err))
		}
		return b.Bytes(), nil
	}
	exec := func(pp *parsedPart) (string, error) {
		out, err := run(pp)
		return string(out), err
	}

	for _, p := range channels.Lookup(n.Channel).Parts {
		out, err := run(l.parts[p.File])
		if err != nil {
			return nil, err
		}
		var text string
		switch {
		case p.OneLine:
			text = oneLine(string(out))
		case !p.HTML && p.EndLine:
			text = string(append(bytes.TrimSpace(out), '\n')) // in b's room: one copy
		case !p.HTML:
			text = string(bytes.TrimSpace(out)) // trimmed before it is copied
		default:
			text = string(out)
		}
		if p.Check != nil {
			if err := p.Check(text); err != nil {
				return nil, failure.Perm(failure.ReasonRender, fmt.Errorf("%s part: %w", p.File, err))
			}
		}
		if fit && p.Limit > 0 {
			text = clip(m, p.Name, text, p.Limit)
		}
		*partField(m, p.Field) = text
	}
	if f := features[n.Channel]; f != nil {
		if err := f(r, n, l, d, m, exec, fit); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// partField is where a part of field f goes in m.
func partField(m *channels.Message, f channels.Field) *string {
	switch f {
	case channels.FieldSubject:
		return &m.Subject
	case channels.FieldHTML:
		return &m.HTML
	case channels.FieldTitle:
		return &m.Title
	}
	return &m.Text
}

// execFunc runs one parsed part on the render's data.
type execFunc func(pp *parsedPart) (string, error)

// features are what the shipped channels add to the generic rendering of
// their descriptors' parts, driven by the rule's options in routing.yaml
// (email.attach, sms.max_segments and sms.shorten, push.data). A channel
// without options has none: its parts are its message.
var features = map[notification.Channel]func(r *rule, n *notification.Notification, l *localized, d *view, m *channels.Message, exec execFunc, fit bool) error{
	notification.Email: emailFeatures,
	notification.SMS:   smsFeatures,
	notification.Push:  pushFeatures,
	inApp:              inAppFeatures,
}

func emailFeatures(r *rule, n *notification.Notification, _ *localized, d *view, m *channels.Message, _ execFunc, fit bool) error {
	if fit {
		m.ToName = clip(m, "recipient_name", m.ToName, maxDisplayName)
	}
	if r.attachICS {
		a, err := icsAttachment(d, n.To, r.icsCancel)
		if err != nil {
			return failure.Perm(failure.ReasonRender, fmt.Errorf("%s (email.attach: ics): %w", r.eventType+"/routing.yaml", err))
		}
		m.Attachments = []channels.Attachment{a}
	}
	return nil
}

func smsFeatures(r *rule, _ *notification.Notification, l *localized, d *view, m *channels.Message, exec execFunc, fit bool) error {
	m.Text = smsText(m.Text)
	if fit && SMS(m.Text).Segments > r.maxSegments {
		renderSMS := func() (string, error) {
			t, err := exec(l.parts[partText])
			return smsText(strings.TrimSpace(t)), err
		}
		var err error
		if m.Text, m.Shortened, err = fitSMS(r, d, renderSMS); err != nil {
			return err
		}
	}
	return nil
}

// inApp is the in-app channel (channels/inapp), whose items carry data
// keys as push messages do.
const inApp notification.Channel = "inapp"

// inAppFeatures copies the rule's inapp.data keys into the feed item's
// data, with the event's type and id, as pushFeatures does for a push.
func inAppFeatures(r *rule, n *notification.Notification, _ *localized, d *view, m *channels.Message, _ execFunc, _ bool) error {
	return copyData(r, "inapp.data", r.inappData, n, d, m)
}

// copyData sets m.Data to the event's type and id and the data keys a
// rule's option (push.data, inapp.data) lists.
func copyData(r *rule, option string, keys []string, n *notification.Notification, d *view, m *channels.Message) error {
	m.Data = make(map[string]string, 2+len(keys))
	m.Data["event_type"] = n.EventType
	m.Data["event_id"] = n.EventID
	for _, k := range keys {
		v, ok := d.get(k)
		if !ok {
			return failure.Errorf(failure.Permanent, failure.ReasonRender,
				"%s/routing.yaml (%s): map has no entry for key %q", r.eventType, option, k)
		}
		m.Data[k] = v
	}
	return nil
}

func pushFeatures(r *rule, n *notification.Notification, _ *localized, d *view, m *channels.Message, _ execFunc, fit bool) error {
	if err := copyData(r, "push.data", r.pushData, n, d, m); err != nil {
		return err
	}
	if fit && pushPayloadBound(m) > maxPushPayload && PushPayloadBytes(m) > maxPushPayload {
		// push.data values are for the app, not for reading: they
		// are not cut, so the message cannot be sent.
		return failure.Errorf(failure.Permanent, failure.ReasonTooLarge,
			"%s push payload is %d bytes with its title and body cut to the display limits; FCM and APNs refuse more than %d (push.data is not cut)",
			r.eventType, PushPayloadBytes(m), maxPushPayload)
	}
	return nil
}

// Send-time limits of what data can make longer than any template meant:
// a subject or display name line (RFC 5322 limits a header line to 998
// bytes; 150 characters stay under it even when every one is encoded), and
// a push title and body (the display limits lint holds templates to; past
// them the payload can pass FCM's 4096 bytes, which FCM refuses). Lint
// and the preview show the samples uncut.
const maxDisplayName = 64

// pushPayloadBound is an upper bound of PushPayloadBytes without encoding:
// JSON escaping makes at most six bytes of one, and the fixed keys and
// punctuation of the payload cost well under 64 bytes plus 8 per data
// entry. Almost every push is far under the limit, so the send path
// encodes only those that might not be.
func pushPayloadBound(m *channels.Message) int {
	n := 64 + 6*(len(m.Title)+len(m.Text))
	for k, v := range m.Data {
		n += 8 + 6*(len(k)+len(v))
	}
	return n
}

// clip cuts s to at most n characters, ending with an ellipsis, and records
// part as shortened on m.
func clip(m *channels.Message, part, s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	m.Shortened = append(m.Shortened, part)
	return strings.TrimRightFunc(string(r[:n-1]), unicode.IsSpace) + ellipsis
}

// execError restates a template execution error for a template author:
// "<file>:<line>:<col>: missing data key "k" (at <.k>)" instead of the
// template packages' longer form, which repeats the file name.
func execError(err error) error {
	m := execErrorRE.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	what := m[3]
	if k := missingKeyRE.FindStringSubmatch(what); k != nil {
		what = "missing data key " + k[1]
	}
	re := &renderError{msg: m[1] + ": " + what + " (at <" + m[2] + ">)", what: what + " (at <" + m[2] + ">)", err: err}
	if p := strings.Split(m[1], ":"); len(p) == 3 {
		re.file = p[0]
		re.line, _ = strconv.Atoi(p[1])
		re.col, _ = strconv.Atoi(p[2])
	}
	return re
}

var (
	execErrorRE  = regexp.MustCompile(`^(?:html/)?template: ([^ ]+:\d+:\d+): executing "[^"]*" at <(.*?)>: (.*)$`)
	missingKeyRE = regexp.MustCompile(`^map has no entry for key (".*")$`)
)

type renderError struct {
	msg        string
	file, what string // the template file, and msg without the position
	line, col  int
	err        error
}

func (e *renderError) Error() string { return e.msg }
func (e *renderError) Unwrap() error { return e.err }

// resolve picks the templates for a recipient locale. Load guarantees en.
func (r *rule) resolve(ch notification.Channel, locale string) *localized {
	byLocale := r.files[ch]
	if l, ok := byLocale[locale]; ok {
		return l
	}
	for _, c := range candidates(locale) {
		if l, ok := byLocale[c]; ok {
			return l
		}
	}
	return byLocale[fallbackLocale]
}

// oneLine collapses a rendered subject or title to one trimmed line, so
// data cannot inject a header or a second line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if strings.ContainsAny(s, "\r\n\t") {
		s = strings.Join(strings.Fields(s), " ")
	}
	return s
}

var (
	bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}
)
