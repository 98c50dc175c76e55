package dispatcher_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/notification"
)

// fillTo sets the string at path (dot-separated; a number indexes an array)
// in the event raw so that the event is exactly size bytes, written as a
// producer that does not escape HTML writes it.
func fillTo(t *testing.T, raw []byte, path, fill string, size int) []byte {
	t.Helper()
	encode := func(v any) []byte {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	}
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(path, ".")
	var cur any = ev
	for _, p := range parts[:len(parts)-1] {
		switch c := cur.(type) {
		case map[string]any:
			cur = c[p]
		case []any:
			cur = c[0]
		}
	}
	last := parts[len(parts)-1]
	obj := cur.(map[string]any)
	obj[last] = ""
	room := size - len(encode(ev))
	obj[last] = strings.Repeat(fill, room/len(fill)) + strings.Repeat("a", room%len(fill))
	b := encode(ev)
	if len(b) != size {
		t.Fatalf("built %d bytes, want %d", len(b), size)
	}
	return b
}

// Every event of the largest size herald accepts, with its bulk in any one
// field (free text of '<', the recipient's name without a space, which a
// notification carries three times), plans notifications that Encode
// accepts: none is refused at the dispatcher or by a channel worker.
func TestLargestEventsMakeNotificationsWithinLimit(t *testing.T) {
	p := planner(t, func() time.Time { return time.Now() })
	samples, err := filepath.Glob(filepath.Join("..", "templates", "*", "samples", "*.json"))
	if err != nil || len(samples) == 0 {
		t.Fatalf("no samples: %v", err)
	}
	for _, s := range samples {
		raw, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		var probe struct {
			Data map[string]any `json:"data"`
		}
		if err := json.Unmarshal(raw, &probe); err != nil {
			t.Fatal(err)
		}
		fields := []string{"data.note", "data.class.name"}
		if _, ok := probe.Data["member"]; ok {
			fields = append(fields, "data.member.name")
		}
		if _, ok := probe.Data["attendees"]; ok {
			fields = append(fields, "data.attendees.0.name")
		}
		for _, f := range fields {
			ev := fillTo(t, raw, f, "<", events.MaxEventSize)
			ns, err := p.Plan(ev)
			if err != nil {
				t.Errorf("%s with %s filled: %v", s, f, err)
				continue
			}
			largest := 0
			for i := range ns {
				b, err := notification.Encode(&ns[i])
				if err != nil {
					t.Errorf("%s with %s filled: %v", s, f, err)
					continue
				}
				largest = max(largest, len(b))
			}
			t.Logf("%s, %s: %d notifications, the largest %d bytes", filepath.Base(filepath.Dir(filepath.Dir(s))), f, len(ns), largest)
		}
	}
}
