package templates

import (
	"strings"

	"github.com/gymhq/herald/notification"
)

// A template file is named [<rule>.]<channel>.<locale>.<part>:
//
//	email.en.subject.txt   email.en.txt   email.en.html
//	sms.en.txt
//	push.en.title.txt      push.en.body.txt
//
// <rule> is present only for a rule with a name (several rules of one event
// type sending on the same channel); <locale> is a BCP 47 tag (es, es-MX).
const (
	partSubject = "subject.txt"
	partText    = "txt"
	partHTML    = "html"
	partTitle   = "title.txt"
	partBody    = "body.txt"
)

// channelParts lists the files each channel needs in every locale it has.
var channelParts = map[notification.Channel][]string{
	notification.Email: {partSubject, partText, partHTML},
	notification.SMS:   {partText},
	notification.Push:  {partTitle, partBody},
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
	for _, p := range channelParts[t.channel] {
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
