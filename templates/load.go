package templates

import (
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"
	texttemplate "text/template"
	"unicode/utf8"

	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
)

// Push display limits herald holds templates to (characters): beyond them
// platforms truncate, so the message a member reads is not the one written.
const (
	maxPushTitle = 65
	maxPushBody  = 240
)

var eventTypeRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// localized is one rule's templates for one channel and locale, parsed once.
type localized struct {
	locale  string
	lang    *localeData
	subject *texttemplate.Template // email
	text    *texttemplate.Template // email text part, sms
	html    *htmltemplate.Template // email
	title   *texttemplate.Template // push
	body    *texttemplate.Template // push
}

// problems collects validation failures as "file: problem" lines.
type problems []string

func (p *problems) add(file, format string, args ...any) {
	*p = append(*p, file+": "+fmt.Sprintf(format, args...))
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	sort.Strings(p)
	errs := make([]error, len(p))
	for i, s := range p {
		errs[i] = errors.New(s)
	}
	return fmt.Errorf("templates: %d problem(s):\n%w", len(p), errors.Join(errs...))
}

// Load reads and validates a template tree: one folder per event type (named
// as the type, holding routing.yaml), and optionally locales/<tag>.yaml.
// Top-level files, folders named testdata or locales, and folders whose
// names start with "." or "_" are not event types.
//
// Everything is checked before anything is used: routing parses, every
// channel a rule sends on has complete templates in en and in each other
// locale it has, every file parses, and every sample event plans and renders
// in every locale within the channel limits (SMS in GSM-7 within its segment
// budget, push title and body within 65 and 240 characters). Every rule and
// channel must be exercised by some sample. The error lists every problem,
// one "file: problem" line each.
func Load(fsys fs.FS) (*Set, error) {
	var probs problems
	s := &Set{
		types: map[string]*eventType{},
		rules: map[ruleKey]*rule{},
		langs: map[string]*localeData{fallbackLocale: english},
	}
	s.loadLocales(fsys, &probs)

	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if !isDir(fsys, e) || name == "testdata" || name == "locales" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
			continue
		}
		if !eventTypeRE.MatchString(name) {
			probs.add(name, "is not an event type name (letters, digits, '.', '-', '_')")
			continue
		}
		if _, err := fs.Stat(fsys, path.Join(name, "routing.yaml")); err != nil {
			probs.add(name, "has no routing.yaml; every event type folder needs one")
			continue
		}
		if t := s.loadType(fsys, name, &probs); t != nil {
			s.types[name] = t
			s.names = append(s.names, name)
		}
	}
	if len(probs) > 0 {
		return nil, probs.err()
	}
	if len(s.types) == 0 {
		return nil, errors.New("templates: no event type folders found")
	}
	sort.Strings(s.names)
	for _, name := range s.names {
		s.checkSamples(fsys, s.types[name], &probs)
	}
	if err := probs.err(); err != nil {
		return nil, err
	}
	return s, nil
}

// loadLocales reads locales/<tag>.yaml, when the tree has any.
func (s *Set) loadLocales(fsys fs.FS, probs *problems) {
	entries, err := fs.ReadDir(fsys, "locales")
	if err != nil {
		return
	}
	for _, e := range entries {
		file := path.Join("locales", e.Name())
		tag, ok := strings.CutSuffix(e.Name(), ".yaml")
		if e.IsDir() || !ok {
			probs.add(file, "is not a <locale>.yaml file")
			continue
		}
		canon, ok := canonicalLocale(tag)
		if !ok || canon != tag {
			probs.add(file, "%q is not a canonical BCP 47 tag (e.g. es, pt-BR)", tag)
			continue
		}
		b, err := fs.ReadFile(fsys, file)
		if err != nil {
			probs.add(file, "%v", err)
			continue
		}
		d, err := parseLocaleData(b)
		if err != nil {
			probs.add(file, "%v", err)
			continue
		}
		s.langs[tag] = d
	}
}

// langFor returns the names and layouts for a template locale, and false
// when only English was found for a non-English locale.
func (s *Set) langFor(locale string) (*localeData, bool) {
	for _, c := range candidates(locale) {
		if d, ok := s.langs[c]; ok {
			return d, baseOf(c) == baseOf(locale)
		}
	}
	return english, baseOf(locale) == fallbackLocale
}

// loadType parses one event type folder. It returns nil when the folder has
// problems, which are added to probs.
func (s *Set) loadType(fsys fs.FS, dir string, probs *problems) *eventType {
	before := len(*probs)
	routingFile := path.Join(dir, "routing.yaml")
	b, err := fs.ReadFile(fsys, routingFile)
	if err != nil {
		probs.add(routingFile, "%v", err)
		return nil
	}
	desc, rules := parseRouting(dir, routingFile, b, probs.add)
	if len(*probs) > before {
		return nil
	}

	// Collect the template files: rule → channel → locale → part → text.
	type files = map[string]map[string]string
	found := map[*rule]map[notification.Channel]files{}
	byName := map[ruleKey]*rule{}
	for _, r := range rules {
		found[r] = map[notification.Channel]files{}
		for _, ch := range r.channels {
			byName[ruleKey{r.name, ch}] = r
			found[r][ch] = files{}
		}
	}
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		probs.add(dir, "%v", err)
		return nil
	}
	for _, e := range entries {
		name, file := e.Name(), path.Join(dir, e.Name())
		switch {
		case name == "routing.yaml" || name == "samples" && e.IsDir() || strings.HasSuffix(name, ".md"):
			continue
		case e.IsDir():
			probs.add(file, "is a folder; only samples/ belongs in an event type folder")
			continue
		}
		tn, ok := parseTemplateName(name)
		if !ok {
			probs.add(file, "is not a template file; want [<rule>.]<channel>.<locale>.<part>, e.g. email.en.subject.txt, email.en.txt, email.en.html, sms.en.txt, push.en.title.txt, push.en.body.txt")
			continue
		}
		r := byName[ruleKey{tn.rule, tn.channel}]
		if r == nil {
			if tn.rule == "" {
				probs.add(file, "no unnamed rule in routing.yaml sends %s", tn.channel)
			} else {
				probs.add(file, "no rule named %q in routing.yaml sends %s", tn.rule, tn.channel)
			}
			continue
		}
		if canon, ok := canonicalLocale(tn.locale); !ok || canon != tn.locale {
			if ok {
				probs.add(file, "write locale %q as %q", tn.locale, canon)
			} else {
				probs.add(file, "%q is not a BCP 47 locale", tn.locale)
			}
			continue
		}
		b, err := fs.ReadFile(fsys, file)
		if err != nil {
			probs.add(file, "%v", err)
			continue
		}
		if !utf8.Valid(b) {
			probs.add(file, "is not valid UTF-8")
			continue
		}
		byLocale := found[r][tn.channel]
		if byLocale[tn.locale] == nil {
			byLocale[tn.locale] = map[string]string{}
		}
		byLocale[tn.locale][tn.part] = string(b)
	}

	for _, r := range rules {
		r.files = map[notification.Channel]map[string]*localized{}
		for _, ch := range r.channels {
			byLocale := found[r][ch]
			if _, ok := byLocale[fallbackLocale]; !ok {
				probs.add(dir, "%s sends %s but has no %s templates (%s); en is every locale's fallback", r.label(), ch,
					fallbackLocale, strings.Join(partFiles(r, ch, fallbackLocale), ", "))
			}
			r.files[ch] = map[string]*localized{}
			for _, locale := range sortedKeys(byLocale) {
				parts := byLocale[locale]
				var missing []string
				for _, p := range channelParts[ch] {
					if _, ok := parts[p]; !ok {
						missing = append(missing, fileName(r, ch, locale, p))
					}
				}
				if len(missing) > 0 {
					probs.add(dir, "locale %s of %s is incomplete: missing %s", locale, ch, strings.Join(missing, ", "))
					continue
				}
				lang, ok := s.langFor(locale)
				if !ok {
					probs.add(path.Join(dir, fileName(r, ch, locale, channelParts[ch][0])), "no locales/%s.yaml gives day and month names for this locale", baseOf(locale))
				}
				l := &localized{locale: locale, lang: lang}
				fm := funcs(lang)
				for _, p := range channelParts[ch] {
					name := path.Join(dir, fileName(r, ch, locale, p))
					var err error
					if p == partHTML {
						l.html, err = htmltemplate.New(name).Option("missingkey=error").Funcs(fm).Parse(parts[p])
					} else {
						var t *texttemplate.Template
						t, err = texttemplate.New(name).Option("missingkey=error").Funcs(fm).Parse(parts[p])
						switch p {
						case partSubject:
							l.subject = t
						case partTitle:
							l.title = t
						case partBody:
							l.body = t
						default:
							l.text = t
						}
					}
					if err != nil {
						probs.add(name, "does not parse: %s", trimTemplateErr(err, name))
					}
				}
				r.files[ch][locale] = l
			}
			s.rules[ruleKey{r.template, ch}] = r
		}
	}
	if len(*probs) > before {
		return nil
	}
	return &eventType{name: dir, description: desc, rules: rules}
}

func partFiles(r *rule, ch notification.Channel, locale string) []string {
	var out []string
	for _, p := range channelParts[ch] {
		out = append(out, fileName(r, ch, locale, p))
	}
	return out
}

func baseOf(locale string) string {
	if i := strings.IndexByte(locale, '-'); i > 0 {
		return locale[:i]
	}
	return locale
}

// trimTemplateErr drops the "template: <name>:" prefix the template
// packages put before the line number, since problems already name the file.
func trimTemplateErr(err error, name string) string {
	msg := err.Error()
	for _, p := range []string{"template: " + name + ":", "html/template:" + name + ":", "template: "} {
		if s, ok := strings.CutPrefix(msg, p); ok {
			return "line " + s
		}
	}
	return msg
}

// checkSamples plans every sample of t and renders each notification in
// every locale its channel has, checking channel limits, and checks that
// every rule and channel is exercised by some sample.
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
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
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
				m, err := s.Render(&n)
				if err != nil {
					probs.add(file, "%s in %s: %v", n.Channel, locale, unwrapFailure(err))
					continue
				}
				checkLimits(file, r, locale, m.Channel, m.Subject, m.Title, m.Text, probs)
			}
		}
	}
	for _, r := range t.rules {
		for _, ch := range r.channels {
			if !exercised[ruleKey{r.template, ch}] {
				probs.add(dir, "no sample makes %s send %s; add one that does", r.label(), ch)
			}
		}
	}
}

// checkLimits holds a rendered sample to its channel's limits.
func checkLimits(file string, r *rule, locale string, ch notification.Channel, subject, title, text string, probs *problems) {
	where := func(part string) string { return fileName(r, ch, locale, part) }
	switch ch {
	case notification.Email:
		if strings.TrimSpace(subject) == "" {
			probs.add(file, "%s renders an empty subject", where(partSubject))
		}
	case notification.SMS:
		n, bad, ok := gsmSeptets(text)
		switch {
		case !ok:
			probs.add(file, "%s renders %q, which is outside GSM-7 and would send the whole SMS as UCS-2", where(partText), bad)
		case n > smsBudget(r.maxSegments):
			probs.add(file, "%s renders %d GSM-7 characters, over the %d of %d segment(s) (sms.max_segments)", where(partText), n, smsBudget(r.maxSegments), r.maxSegments)
		case n == 0:
			probs.add(file, "%s renders an empty SMS", where(partText))
		}
	case notification.Push:
		if n := utf8.RuneCountInString(title); n > maxPushTitle || n == 0 {
			probs.add(file, "%s renders %d characters; want 1 to %d", where(partTitle), n, maxPushTitle)
		}
		if n := utf8.RuneCountInString(text); n > maxPushBody || n == 0 {
			probs.add(file, "%s renders %d characters; want 1 to %d", where(partBody), n, maxPushBody)
		}
	}
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

// isDir reports whether e is a folder, following a symlink: in a Kubernetes
// ConfigMap volume every top-level entry is a symlink into ..data.
func isDir(fsys fs.FS, e fs.DirEntry) bool {
	if e.Type()&fs.ModeSymlink == 0 {
		return e.IsDir()
	}
	fi, err := fs.Stat(fsys, e.Name())
	return err == nil && fi.IsDir()
}
