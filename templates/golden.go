package templates

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/notification"
)

// Rendering is one sample rendered for one notification in one locale:
// what a recipient with that locale would get.
type Rendering struct {
	EventType    string
	Sample       Sample
	Notification notification.Notification // Locale is the one rendered
	Message      *channels.Message         // nil when Err is set
	Err          error
	// Golden is where the rendering's golden file lives in the tree:
	// testdata/golden/<type>/<sample>/<recipient>.<channel>[.<rule>].<locale>.txt
	Golden string
}

// Renderings renders every sample of every event type (or of the types
// given), for each recipient, rule and channel it plans (one push token
// per person: further tokens render identically), in every locale the
// rule has for that channel. Samples render as written, as lint sees them:
// an SMS is not shortened to its budget, so the preview and the golden
// files show copy that is over it.
func (s *Set) Renderings(eventTypes ...string) []Rendering {
	if len(eventTypes) == 0 {
		eventTypes = s.names
	}
	var out []Rendering
	for _, typ := range eventTypes {
		for _, smp := range s.samples[typ] {
			ns, err := s.Plan(smp.Event, smp.Event.Time)
			if err != nil {
				continue // Load planned every sample
			}
			done := map[string]bool{}
			for _, n := range ns {
				key := n.RecipientID + "." + string(n.Channel) + strings.ReplaceAll(strings.TrimPrefix(n.Template, typ), "/", ".")
				if done[key] {
					continue
				}
				done[key] = true
				for _, locale := range s.Locales(n.Template, n.Channel) {
					n.Locale = locale
					m, err := s.render(&n, false)
					out = append(out, Rendering{
						EventType: typ, Sample: smp, Notification: n, Message: m, Err: err,
						Golden: path.Join("testdata", "golden", typ, smp.Name, key+"."+locale+".txt"),
					})
				}
			}
		}
	}
	return out
}

// Dump writes a message as the readable document golden files hold.
// Calendar CRLFs become LFs.
func Dump(m *channels.Message) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "channel: %s\nto: %s\nto_name: %s\nlocale: %s\npriority: %s\n", m.Channel, m.To, m.ToName, m.Locale, m.Priority)
	switch m.Channel {
	case notification.Email:
		fmt.Fprintf(&b, "subject: %s\n\n--- text ---\n%s\n--- html ---\n%s\n", m.Subject, m.Text, m.HTML)
		for _, a := range m.Attachments {
			fmt.Fprintf(&b, "--- attachment %s (%s) ---\n%s", a.Filename, a.ContentType, strings.ReplaceAll(string(a.Data), "\r\n", "\n"))
		}
	case notification.SMS:
		info := SMS(m.Text)
		fmt.Fprintf(&b, "length: %d\nencoding: %s\nsegments: %d\n\n%s\n", len([]rune(m.Text)), info.Encoding, info.Segments, m.Text)
	case notification.Push:
		keys := make([]string, 0, len(m.Data))
		for k := range m.Data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "data.%s: %s\n", k, m.Data[k])
		}
		fmt.Fprintf(&b, "\ntitle: %s\n\n%s\n", m.Title, m.Text)
	default:
		for _, p := range channels.Lookup(m.Channel).Parts {
			fmt.Fprintf(&b, "\n--- %s ---\n%s\n", p.File, PartText(m, p.Field))
		}
	}
	return b.Bytes()
}

// GoldenResult is what Golden found, by golden file path (slash-separated,
// relative to the tree).
type GoldenResult struct {
	Checked int
	Differ  map[string]GoldenDiff // rendered output differs from the file
	Missing []string              // rendered, but no golden file
	Stale   []string              // golden file nothing renders any more
	Failed  map[string]error      // the rendering failed
	Written []string              // with update: files written or removed
}

// GoldenDiff locates the first difference between a golden file and the
// current rendering.
type GoldenDiff struct {
	Line      int
	Want, Got string
}

// OK reports whether every rendering matched its golden file.
func (r *GoldenResult) OK() bool {
	return len(r.Differ) == 0 && len(r.Missing) == 0 && len(r.Stale) == 0 && len(r.Failed) == 0
}

// Golden compares every rendering with the golden files under
// root/testdata/golden, where root is the tree's directory. With update it
// rewrites them instead (and removes stale ones), so the change is
// reviewed as a diff.
func Golden(s *Set, root string, update bool) (*GoldenResult, error) {
	res := &GoldenResult{Differ: map[string]GoldenDiff{}, Failed: map[string]error{}}
	want := map[string]bool{}
	for _, r := range s.Renderings() {
		want[r.Golden] = true
		if r.Err != nil {
			res.Failed[r.Golden] = r.Err
			continue
		}
		got := Dump(r.Message)
		file := filepath.Join(root, filepath.FromSlash(r.Golden))
		res.Checked++
		old, err := os.ReadFile(file)
		if err == nil && bytes.Equal(old, got) {
			continue
		}
		if update {
			if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
				return nil, err
			}
			if err := os.WriteFile(file, got, 0o644); err != nil {
				return nil, err
			}
			res.Written = append(res.Written, r.Golden)
			continue
		}
		if err != nil {
			res.Missing = append(res.Missing, r.Golden)
			continue
		}
		res.Differ[r.Golden] = firstDiff(old, got)
	}
	dir := filepath.Join(root, "testdata", "golden")
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if want[rel] {
			return nil
		}
		if update {
			res.Written = append(res.Written, rel)
			return os.Remove(p)
		}
		res.Stale = append(res.Stale, rel)
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	sort.Strings(res.Missing)
	sort.Strings(res.Stale)
	sort.Strings(res.Written)
	return res, nil
}

func firstDiff(want, got []byte) GoldenDiff {
	w, g := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b || i >= len(w) || i >= len(g) {
			return GoldenDiff{Line: i + 1, Want: a, Got: b}
		}
	}
	return GoldenDiff{}
}
