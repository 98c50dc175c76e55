package templates

import (
	"strings"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/notification"
)

// A template file is named [<rule>.]<channel>.<locale>.<part>, the parts
// being those of the channel's descriptor; for the shipped channels:
//
//	email.en.subject.txt   email.en.txt   email.en.html
//	sms.en.txt
//	push.en.title.txt      push.en.body.txt
//
// <rule> is present only for a rule with a name (several rules of one event
// type sending on the same channel); <locale> is a BCP 47 tag (es, es-MX).
// The parts each channel needs are its descriptor's (channels.Part); the
// names below are those lint and the shipped channels' features refer to.
const (
	partSubject = "subject.txt"
	partText    = "txt"
	partHTML    = "html"
	partTitle   = "title.txt"
	partBody    = "body.txt"
)

// channelParts lists the files ch needs in every locale it has, from its
// descriptor.
func channelParts(ch notification.Channel) []string {
	d := channels.Lookup(ch)
	if d == nil {
		return nil
	}
	out := make([]string, len(d.Parts))
	for i, p := range d.Parts {
		out[i] = p.File
	}
	return out
}

// templateName is a parsed template file name.
type templateName struct {
	rule    string
	channel notification.Channel
	locale  string // as written
	part    string
}

// parseTemplateName splits a template file name, reporting false when it
// does not follow the grammar above.
func parseTemplateName(name string) (templateName, bool) {
	f := strings.Split(name, ".")
	var t templateName
	if len(f) >= 2 && !notification.Channel(f[0]).Valid() {
		t.rule, f = f[0], f[1:]
	}
	if len(f) < 3 || !notification.Channel(f[0]).Valid() || f[1] == "" {
		return t, false
	}
	t.channel, t.locale, t.part = notification.Channel(f[0]), f[1], strings.Join(f[2:], ".")
	for _, p := range channelParts(t.channel) {
		if p == t.part {
			return t, true
		}
	}
	return t, false
}

// fileName is the inverse of parseTemplateName.
func fileName(r *rule, ch notification.Channel, locale, part string) string {
	return r.filePrefix(ch) + "." + locale + "." + part
}
