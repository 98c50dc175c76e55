package templates

import (
	"bytes"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	texttemplate "text/template"
	"text/template/parse"
	"unicode/utf8"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/notification"
)

var eventTypeRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// localized is one rule's templates for one channel and locale, parsed once.
type localized struct {
	locale string
	lang   *localeData
	parts  map[string]*parsedPart // by part file ("subject.txt")
	src    map[string]string      // part → source, to locate what lint finds
}

// parsedPart is one parsed template file: text/template, or html/template
// for a part the descriptor marks HTML, and its compiled program when it
// compiles (compile.go).
type parsedPart struct {
	exec interface {
		Execute(io.Writer, any) error
	}
	tree *parse.Tree
	// prog renders the part without reflection; nil when the part uses
	// something compile does not support, and exec renders it.
	prog *program
}

// execute writes the part rendered with data d to b: by its program, or
// by the template package when it has none. Both write the same bytes and
// fail with the same errors.
func (pp *parsedPart) execute(b *bytes.Buffer, d *view) error {
	if pp.prog != nil {
		return pp.prog.execute(b, d)
	}
	return pp.exec.Execute(b, d.asMap())
}

// compilePart compiles a parsed part, or returns nil to leave it to its
// template package. An HTML part is compiled as html/template escapes it,
// which it does on first execution: the part is executed once here, with
// no data, once its unescaped tree is known to compile, so that execution
// is bounded (no loops) and cannot write anywhere. A part whose escaping
// fails is not compiled, and renders fail with html/template's error.
func compilePart(name string, pp *parsedPart, html bool, fm map[string]any) *program {
	prog, err := compile(name, pp.tree, fm)
	if err != nil || !html {
		return prog
	}
	var escErr *htmltemplate.Error
	if err := pp.exec.Execute(io.Discard, nil); errors.As(err, &escErr) {
		return nil
	}
	prog, err = compile(name, pp.tree, fm)
	if err != nil {
		return nil
	}
	return prog
}

// Load reads and validates a template tree: one folder per event type (named
// as the type, holding routing.yaml), and optionally locales/<tag>.yaml.
// Top-level files, folders named testdata or locales, and folders whose
// names start with "." or "_" are not event types.
//
// Everything is checked before anything is used: routing parses, every
// channel a rule sends on has complete templates in en and in each other
// locale it has, every file parses, and every sample event plans and renders
// in every locale within the channel limits (lintMessage), with email HTML
// escaping hostile data. Every rule and channel must be exercised by some
// sample. The error is a *LoadError listing every problem, one
// "file:line:col: problem" line each.
func Load(fsys fs.FS) (*Set, error) {
	s, probs, err := inspect(fsys)
	if err != nil {
		return nil, err
	}
	if len(probs) > 0 {
		return nil, probs.err()
	}
	return s, nil
}

// Inspect validates a tree as Load does, but also returns what could be
// loaded: a Set of the event types whose folders parsed (nil when none did)
// and every problem, sorted. The preview uses it to show the good parts of
// a tree beside what is wrong with the rest; nothing may serve such a Set.
func Inspect(fsys fs.FS) (*Set, []Problem, error) {
	s, probs, err := inspect(fsys)
	if err != nil {
		return nil, nil, err
	}
	if len(s.types) == 0 {
		s = nil
	}
	return s, probs.sorted(), nil
}

func inspect(fsys fs.FS) (*Set, problems, error) {
	var probs problems
	s := &Set{
		types:   map[string]*eventType{},
		rules:   map[ruleKey]*rule{},
		langs:   map[string]*localeData{fallbackLocale: english},
		samples: map[string][]Sample{},
	}
	s.loadLocales(fsys, &probs)
	s.loadChannelFiles(fsys, &probs)
	if r, err := loadRoster(fsys); err != nil {
		probs.add(StaffFile, "%v", err)
	} else {
		s.roster = r
	}
	cats, haveCategories, catProbs := loadCategories(fsys)
	for _, p := range catProbs {
		probs.at(CategoriesFile, p.line, 0, "", "%s", p.msg)
	}
	if cats == nil || len(catProbs) > 0 {
		// Its own problems are reported; rules naming its categories are
		// not reported again as undeclared.
		cats = defaultCategories()
	}
	s.categories = cats

	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, nil, fmt.Errorf("templates: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if name == "testdata" || name == "locales" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || !isDir(fsys, name, e) {
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
	if len(s.types) == 0 && len(probs) == 0 {
		return nil, nil, errors.New("templates: no event type folders found")
	}
	sort.Strings(s.names)
	for _, name := range s.names {
		s.checkSamples(fsys, s.types[name], &probs)
		for _, r := range s.types[name].rules {
			switch {
			case s.categories[r.category] != nil, len(catProbs) > 0:
			case !haveCategories:
				probs.at(name+"/routing.yaml", r.line, 0, "", "%s: category %q is not declared: the tree has no %s, so only transactional exists", r.label(), r.category, CategoriesFile)
			default:
				probs.at(name+"/routing.yaml", r.line, 0, "", "%s: category %q is not declared in %s (%s)", r.label(), r.category, CategoriesFile, strings.Join(s.categoryNames(), ", "))
			}
		}
	}
	s.indexCancels(&probs)
	return s, probs, nil
}

// loadChannelFiles runs each channel's Files hook on the tree: its files
// are checked, and hot-reloaded, with the templates.
func (s *Set) loadChannelFiles(fsys fs.FS, probs *problems) {
	for _, d := range channels.All() {
		if d.Files == nil {
			continue
		}
		v, err := d.Files(fsys)
		if err != nil {
			probs.add(string(d.Name), "%v", err)
			continue
		}
		if s.files == nil {
			s.files = map[notification.Channel]any{}
		}
		s.files[d.Name] = v
	}
}

// isDir reports whether e is a folder, following a symbolic link: a
// Kubernetes ConfigMap mount makes every top-level entry a link into a
// timestamped folder, and os.DirFS reports links as they are.
func isDir(fsys fs.FS, name string, e fs.DirEntry) bool {
	if e.Type()&fs.ModeSymlink == 0 {
		return e.IsDir()
	}
	fi, err := fs.Stat(fsys, name)
	return err == nil && fi.IsDir()
}

// ignored reports whether a file in an event type folder is not part of
// the tree: notes (*.md), hidden files and editor backups, which appear
// and vanish while someone edits a hot-reloaded directory.
func ignored(name string) bool {
	return strings.HasSuffix(name, ".md") || strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~")
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
		if ignored(e.Name()) {
			continue
		}
		if isDir(fsys, file, e) || !ok {
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
	desc, threshold, rules := parseRouting(dir, routingFile, b, probs)
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
		case name == "routing.yaml" || name == "samples" && isDir(fsys, file, e) || ignored(name):
			continue
		case isDir(fsys, file, e):
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
				probs.at(path.Join(dir, "routing.yaml"), r.line, 0, "", "%s sends %s but has no %s templates (%s); en is every locale's fallback", r.label(), ch,
					fallbackLocale, strings.Join(partFiles(r, ch, fallbackLocale), ", "))
			}
			r.files[ch] = map[string]*localized{}
			for _, locale := range sortedKeys(byLocale) {
				parts := byLocale[locale]
				var missing []string
				for _, p := range channelParts(ch) {
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
					probs.add(path.Join(dir, fileName(r, ch, locale, channelParts(ch)[0])), "no locales/%s.yaml gives day and month names for this locale", baseOf(locale))
				}
				l := &localized{locale: locale, lang: lang, src: parts, parts: map[string]*parsedPart{}}
				fm := funcs(lang)
				for _, p := range channels.Lookup(ch).Parts {
					name := path.Join(dir, fileName(r, ch, locale, p.File))
					var err error
					pp := &parsedPart{}
					if p.HTML {
						var t *htmltemplate.Template
						if t, err = htmltemplate.New(name).Option("missingkey=error").Funcs(fm).Parse(parts[p.File]); err == nil {
							pp.exec, pp.tree = t, t.Tree
						}
					} else {
						var t *texttemplate.Template
						if t, err = texttemplate.New(name).Option("missingkey=error").Funcs(fm).Parse(parts[p.File]); err == nil {
							pp.exec, pp.tree = t, t.Tree
						}
					}
					if err != nil {
						line, msg := parseErrorAt(err, name)
						probs.at(name, line, 0, "", "does not parse: %s", msg)
						continue
					}
					l.parts[p.File] = pp
					if line, ok := rangeOverNumber(parts[p.File], pp.tree); ok {
						probs.at(name, line, 0, "", "ranges over a number; templates range only over lists in the data, since a loop of millions of steps would hold every worker that renders it")
					}
					pp.prog = compilePart(name, pp, p.HTML, fm)
				}
				r.files[ch][locale] = l
			}
			s.rules[ruleKey{r.template, ch}] = r
		}
	}
	if len(*probs) > before {
		return nil
	}
	return &eventType{name: dir, description: desc, rules: rules, threshold: threshold}
}

func partFiles(r *rule, ch notification.Channel, locale string) []string {
	var out []string
	for _, p := range channelParts(ch) {
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

// parseErrorAt splits a template parse error into its line and the part
// a template author needs, dropping the "template: <name>:" prefix the
// template packages add, since problems already name the file.
func parseErrorAt(err error, name string) (int, string) {
	msg := err.Error()
	for _, p := range []string{"template: " + name + ":", "html/template:" + name + ":", "html/template: " + name + ":"} {
		if rest, ok := strings.CutPrefix(msg, p); ok {
			if m := lineColRE.FindStringSubmatch(rest); m != nil {
				line, _ := strconv.Atoi(m[1])
				return line, strings.TrimSpace(rest[len(m[0]):])
			}
			return 0, strings.TrimSpace(rest)
		}
	}
	return 0, strings.TrimPrefix(msg, "template: ")
}

var lineColRE = regexp.MustCompile(`^(\d+):(?:\d+:)? ?`)
