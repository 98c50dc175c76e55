package templates

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/gymhq/herald/notification"
)

// routingFile is the wire shape of <event type>/routing.yaml. Unknown fields
// are rejected so that a typo ("recipient:") fails lint instead of silently
// changing who is notified.
type routingFile struct {
	Description   string     `yaml:"description"`
	Threshold     *float64   `yaml:"threshold"`
	Notifications []ruleFile `yaml:"notifications"`
}

type ruleFile struct {
	Name              string        `yaml:"name"`
	Recipients        string        `yaml:"recipients"`
	Optional          bool          `yaml:"optional"`
	Channels          channelList   `yaml:"channels"`
	Priority          string        `yaml:"priority"`
	OnlyIfUnreachable channelList   `yaml:"only_if_unreachable"`
	Email             *emailFile    `yaml:"email"`
	SMS               *smsFile      `yaml:"sms"`
	Push              *pushFile     `yaml:"push"`
	InApp             *pushFile     `yaml:"inapp"`
	Category          string        `yaml:"category"`
	Schedule          *scheduleFile `yaml:"schedule"`
	Expires           string        `yaml:"expires"`
	CancelOn          []cancelFile  `yaml:"cancel_on"`
	QuietHours        *quietYAML    `yaml:"quiet_hours"`
}

// scheduleFile is a rule's schedule: send relative to a time in the event's
// data, withdrawn by the events cancel_on names, replaced by a later event
// with the same value at the replace path.
type scheduleFile struct {
	Send     string       `yaml:"send"`
	CancelOn []cancelFile `yaml:"cancel_on"`
	Replace  string       `yaml:"replace"`
}

type cancelFile struct {
	Event string `yaml:"event"`
	Match string `yaml:"match"`
}

// ruleLines returns the line of each rule under notifications, so problems
// with a rule point at it.
func ruleLines(b []byte) []int {
	var doc yaml.Node
	if yaml.Unmarshal(b, &doc) != nil || len(doc.Content) == 0 {
		return nil
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "notifications" {
			var out []int
			for _, item := range m.Content[i+1].Content {
				out = append(out, item.Line)
			}
			return out
		}
	}
	return nil
}

type emailFile struct {
	Attach    string `yaml:"attach"`     // "" or "ics"
	ICSMethod string `yaml:"ics_method"` // "request" (default) or "cancel"
}

type smsFile struct {
	// MaxSegments is the budget of one SMS, in segments: lint holds the
	// samples to it, and Render holds every message to it (Shorten).
	// Default 1.
	MaxSegments int `yaml:"max_segments"`
	// Shorten lists the free-text data keys Render may cut, in order, with
	// an ellipsis, when a message would exceed MaxSegments; absent means
	// DefaultSMSShorten, [] means none.
	Shorten *[]string `yaml:"shorten"`
	// Unicode allows characters outside GSM-7 (the message is then sent as
	// UCS-2, 70 characters a segment, 67 when concatenated). Without it,
	// one such character is a lint error, since it silently halves the
	// segment size.
	Unicode bool `yaml:"unicode"`
}

type pushFile struct {
	Data []string `yaml:"data"` // data keys copied into the push payload
}

// channelList accepts either one channel name or a list of them.
type channelList []string

func (c *channelList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*c = channelList{n.Value}
		return nil
	case yaml.SequenceNode:
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		*c = l
		return nil
	}
	return fmt.Errorf("line %d: want a channel name or a list of channel names", n.Line)
}

// rule is one validated routing rule.
type rule struct {
	eventType string
	index     int    // position in routing.yaml, from 1
	line      int    // of the rule in routing.yaml; 0 when unknown
	name      string // "" for the channel's default rule
	template  string // notification.Template: event type, or "<event type>/<name>"

	recipients        string
	optional          bool
	channels          []notification.Channel
	priority          notification.Priority
	onlyIfUnreachable []notification.Channel

	attachICS   bool
	icsCancel   bool
	maxSegments int
	smsShorten  []string
	smsUnicode  bool
	pushData    []string
	inappData   []string

	category string
	// quiet overrides the category's quiet hours when quietSet: nil is off.
	quiet    *Window
	quietSet bool
	schedule *Schedule
	// expires is when the rule's messages stop being worth sending
	// (routing.yaml expires:), relative to a time in the event's data.
	expires *TimeRef
	// held is an unscheduled rule's cancel_on (routing.yaml, beside
	// its channels): its messages quiet hours hold carry the cancel keys,
	// and are withdrawn as a schedule's are.
	held *Schedule

	// files holds the parsed templates of each channel, by canonical locale.
	files map[notification.Channel]map[string]*localized
}

// cancels is the schedule whose cancel_on withdraws the rule's messages:
// its schedule's, or an unscheduled rule's own; nil for none.
func (r *rule) cancels() *Schedule {
	if r.schedule != nil {
		return r.schedule
	}
	return r.held
}

// label names a rule in messages: its name, or its position.
func (r *rule) label() string {
	if r.name != "" {
		return fmt.Sprintf("rule %q", r.name)
	}
	return fmt.Sprintf("rule %d", r.index)
}

// filePrefix is how the rule's template files begin: "email", or "<name>.email".
func (r *rule) filePrefix(ch notification.Channel) string {
	if r.name == "" {
		return string(ch)
	}
	return r.name + "." + string(ch)
}

var (
	ruleNameRE = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)
	pathRE     = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)
	dataKeyRE  = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
)

// parseRouting parses and validates routing.yaml of eventType. Problems are
// reported through add, each naming the file; the rules returned are usable
// only when no problem was added.
func parseRouting(eventType, file string, b []byte, probs *problems) (string, float64, []*rule) {
	add := probs.add
	var rf routingFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		if errors.Is(err, io.EOF) {
			add(file, "is empty; want a description and notifications")
		} else {
			add(file, "%s", yamlError(err))
		}
		return "", 0, nil
	}
	var threshold float64
	if rf.Threshold != nil {
		if threshold = *rf.Threshold; threshold <= 0 || threshold > 1 {
			add(file, "threshold %v is not in (0, 1]: it is the share of a class's capacity", threshold)
		}
	}
	if len(rf.Notifications) == 0 {
		add(file, "has no notifications")
		return rf.Description, threshold, nil
	}
	lines := ruleLines(b)
	var rules []*rule
	byChannel := map[notification.Channel]map[string]int{} // channel → rule name → index
	for i, rf := range rf.Notifications {
		r := &rule{eventType: eventType, index: i + 1, name: rf.Name, recipients: rf.Recipients, optional: rf.Optional}
		if i < len(lines) {
			r.line = lines[i]
		}
		bad := func(format string, args ...any) {
			probs.at(file, r.line, 0, "", "%s: %s", r.label(), fmt.Sprintf(format, args...))
		}
		if r.name != "" && (!ruleNameRE.MatchString(r.name) || notification.Channel(r.name).Valid()) {
			bad("name must be lower-case letters, digits, - or _, and not a channel name")
		}
		switch {
		case r.recipients == "":
			bad("recipients is missing; want a dot path into the event data, e.g. member or attendees")
		case strings.HasPrefix(r.recipients, StaffPrefix):
			if !staffRoleRE.MatchString(strings.TrimPrefix(r.recipients, StaffPrefix)) {
				bad("recipients %q: staff.<role> names a role of staff.yaml (lower-case letters, digits and _)", r.recipients)
			}
		case !pathRE.MatchString(r.recipients):
			bad("recipients %q is not a dot path into the event data", r.recipients)
		}
		if len(rf.Channels) == 0 {
			bad("channels is missing; want a list of %s", notification.Names())
		}
		seen := map[notification.Channel]bool{}
		for _, c := range rf.Channels {
			ch := notification.Channel(c)
			if !ch.Valid() {
				bad("channel %q is not one of %s", c, notification.Names())
				continue
			}
			if seen[ch] {
				bad("channel %s is listed twice", c)
				continue
			}
			seen[ch] = true
			r.channels = append(r.channels, ch)
			if byChannel[ch] == nil {
				byChannel[ch] = map[string]int{}
			}
			if j, dup := byChannel[ch][r.name]; dup {
				bad("rule %d already sends %s with the same templates; give one of them a distinct name", j, c)
			}
			byChannel[ch][r.name] = r.index
		}
		switch rf.Priority {
		case "", string(notification.Normal):
			r.priority = notification.Normal
		case string(notification.High):
			r.priority = notification.High
		default:
			bad("priority %q is not normal or high", rf.Priority)
		}
		for _, c := range rf.OnlyIfUnreachable {
			ch := notification.Channel(c)
			if !ch.Valid() {
				bad("only_if_unreachable %q is not one of %s", c, notification.Names())
				continue
			}
			if seen[ch] {
				bad("only_if_unreachable %s names a channel this rule sends on", c)
			}
			r.onlyIfUnreachable = append(r.onlyIfUnreachable, ch)
		}
		if rf.Email != nil {
			if !seen[notification.Email] {
				bad("has email options but does not send email")
			}
			switch rf.Email.Attach {
			case "":
			case "ics":
				r.attachICS = true
			default:
				bad("email.attach %q is not ics", rf.Email.Attach)
			}
			switch rf.Email.ICSMethod {
			case "", "request":
			case "cancel":
				r.icsCancel = true
			default:
				bad("email.ics_method %q is not request or cancel", rf.Email.ICSMethod)
			}
			if rf.Email.ICSMethod != "" && !r.attachICS {
				bad("email.ics_method is set but email.attach is not ics")
			}
		}
		r.maxSegments = 1
		r.smsShorten = DefaultSMSShorten
		if rf.SMS != nil {
			if !seen[notification.SMS] {
				bad("has sms options but does not send sms")
			}
			if rf.SMS.MaxSegments < 0 || rf.SMS.MaxSegments > 10 {
				bad("sms.max_segments %d is not between 1 and 10", rf.SMS.MaxSegments)
			} else if rf.SMS.MaxSegments > 0 {
				r.maxSegments = rf.SMS.MaxSegments
			}
			r.smsUnicode = rf.SMS.Unicode
			if rf.SMS.Shorten != nil {
				r.smsShorten = *rf.SMS.Shorten
				for _, k := range r.smsShorten {
					if !dataKeyRE.MatchString(k) {
						bad("sms.shorten %q is not a data key", k)
					}
				}
			}
		}
		if rf.Push != nil {
			if !seen[notification.Push] {
				bad("has push options but does not send push")
			}
			for _, k := range rf.Push.Data {
				if !dataKeyRE.MatchString(k) {
					bad("push.data %q is not a data key", k)
				}
			}
			r.pushData = rf.Push.Data
		}
		if rf.InApp != nil {
			if !seen[inApp] {
				bad("has inapp options but does not send inapp")
			}
			for _, k := range rf.InApp.Data {
				if !dataKeyRE.MatchString(k) {
					bad("inapp.data %q is not a data key", k)
				}
			}
			r.inappData = rf.InApp.Data
		}
		r.template = eventType
		if r.name != "" {
			r.template = eventType + "/" + r.name
		}
		r.category = rf.Category
		if r.category == "" {
			r.category = Transactional
		}
		if q := rf.QuietHours; q != nil {
			r.quietSet = true
			if !q.Off {
				w, err := parseWindow(q)
				if err != nil {
					bad("quiet_hours: %v", err)
				}
				r.quiet = w
			}
		}
		if rf.Schedule != nil {
			sc, err := parseSchedule(r.template, rf.Schedule)
			if err != nil {
				bad("schedule: %v", err)
			}
			r.schedule = sc
		}
		if len(rf.CancelOn) > 0 {
			if rf.Schedule != nil {
				bad("cancel_on belongs inside schedule: for a scheduled rule")
			}
			crs, err := parseCancelOn(rf.CancelOn)
			if err != nil {
				bad("%v", err)
			}
			r.held = &Schedule{CancelOn: crs, template: r.template}
		}
		if rf.Expires != "" {
			ref, err := parseTimeRef("expires", rf.Expires)
			if err != nil {
				bad("%v", err)
			} else if sc := r.schedule; sc != nil && sc.Path == ref.Path && sc.Offset >= ref.Offset {
				bad("expires %q is not after schedule send %q: nothing would ever be sent", ref.String(), sc.String())
			}
			r.expires = ref
		}
		rules = append(rules, r)
	}
	return rf.Description, threshold, rules
}

// yamlError restates a yaml.v3 error without Go type names, one line.
func yamlError(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	msg = yamlFieldRE.ReplaceAllString(msg, "unknown field $1")
	msg = yamlTypeRE.ReplaceAllString(msg, "")
	lines := strings.Split(msg, "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, "; ")
}

var (
	yamlFieldRE = regexp.MustCompile(`field (\S+) not found in type \S+`)
	yamlTypeRE  = regexp.MustCompile(` into (?:templates\.)?\S+`)
)
