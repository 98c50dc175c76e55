package templates_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/notification"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current templates")

// shippedLocales are the languages every shipped folder has.
var shippedLocales = []string{"en", "es"}

// TestGolden renders every sample of every shipped event type, for each
// recipient, channel and locale, and compares with testdata/golden. Run
// `go test ./templates -update` after changing copy, and review the diff.
func TestGolden(t *testing.T) {
	s := embedded(t)
	want := map[string]bool{}
	for _, typ := range s.EventTypes() {
		samples, err := filepath.Glob(filepath.Join(typ, "samples", "*.json"))
		if err != nil || len(samples) == 0 {
			t.Fatalf("%s: no samples", typ)
		}
		for _, path := range samples {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := events.Decode(raw)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			ns := plan(t, s, ev)
			done := map[string]bool{}
			for _, n := range ns {
				key := n.RecipientID + "." + string(n.Channel) + strings.ReplaceAll(strings.TrimPrefix(n.Template, typ), "/", ".")
				if done[key] {
					continue // further push tokens render identically
				}
				done[key] = true
				for _, locale := range shippedLocales {
					n.Locale = locale
					m := render(t, s, &n)
					if m.Locale != locale {
						t.Errorf("%s: rendered %s, want %s", key, m.Locale, locale)
					}
					name := filepath.Join("testdata", "golden", typ, strings.TrimSuffix(filepath.Base(path), ".json"), key+"."+locale+".txt")
					want[name] = true
					checkGolden(t, name, dump(m))
				}
			}
		}
	}
	// A golden file nothing renders any more is stale copy in review.
	_ = filepath.Walk(filepath.Join("testdata", "golden"), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && !want[p] {
			if *update {
				os.Remove(p)
			} else {
				t.Errorf("%s: no longer rendered; run go test -update", p)
			}
		}
		return nil
	})
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(name)
	if err != nil {
		t.Errorf("%s: %v (run go test -update)", name, err)
		return
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the rendered output (run go test -update and review the diff):\n--- got ---\n%s", name, got)
	}
}

// dump renders a message as a readable document. Calendar CRLFs become LFs
// here; TestICS checks the real line endings.
func dump(m *channels.Message) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "channel: %s\nto: %s\nto_name: %s\nlocale: %s\npriority: %s\n", m.Channel, m.To, m.ToName, m.Locale, m.Priority)
	switch m.Channel {
	case notification.Email:
		fmt.Fprintf(&b, "subject: %s\n\n--- text ---\n%s\n--- html ---\n%s\n", m.Subject, m.Text, m.HTML)
		for _, a := range m.Attachments {
			fmt.Fprintf(&b, "--- attachment %s (%s) ---\n%s", a.Filename, a.ContentType, strings.ReplaceAll(string(a.Data), "\r\n", "\n"))
		}
	case notification.SMS:
		fmt.Fprintf(&b, "length: %d\n\n%s\n", len([]rune(m.Text)), m.Text)
	case notification.Push:
		var keys []string
		for k := range m.Data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "data.%s: %s\n", k, m.Data[k])
		}
		fmt.Fprintf(&b, "\ntitle: %s\n\n%s\n", m.Title, m.Text)
	}
	return b.Bytes()
}
