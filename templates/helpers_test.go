package templates_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/templates"
)

var planTime = time.Date(2026, 11, 20, 18, 5, 0, 0, time.UTC)

func embedded(t testing.TB) *templates.Set {
	t.Helper()
	s, err := templates.Embedded()
	if err != nil {
		t.Fatalf("Embedded: %v", err)
	}
	return s
}

// sample reads a shipped sample event as generic JSON, so a test can edit
// it before decoding.
func sample(t testing.TB, eventType, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(eventType, "samples", name))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// decode encodes a generic event and decodes it as the dispatcher would.
func decode(t testing.TB, ev map[string]any) *events.Event {
	t.Helper()
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	e, err := events.Decode(b)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return e
}

// at walks a dot path of objects in generic JSON.
func at(m map[string]any, path string) map[string]any {
	for _, k := range strings.Split(path, ".") {
		m = m[k].(map[string]any)
	}
	return m
}

// plan is what the dispatcher plans for ev: to real subscribers only, so a
// subscription channel sends nothing from a tree that subscribes nobody.
// plan plans ev at planTime and returns what goes out at once: not the
// notifications a schedule holds (planScheduled has those).
func plan(t testing.TB, s *templates.Set, ev *events.Event) []notification.Notification {
	t.Helper()
	now, held := planAll(t, s, ev)
	_ = held
	return now
}

// planAll plans ev at planTime, split into what goes out at once and what
// waits (DueAt set).
func planAll(t testing.TB, s *templates.Set, ev *events.Event) (now, held []notification.Notification) {
	t.Helper()
	ns, _, err := s.PlanChecked(ev, planTime, nil)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	for _, n := range ns {
		if n.DueAt.IsZero() {
			now = append(now, n)
		} else {
			held = append(held, n)
		}
	}
	return now, held
}

func render(t testing.TB, s *templates.Set, n *notification.Notification) *channels.Message {
	t.Helper()
	m, err := s.Render(n)
	if err != nil {
		t.Fatalf("Render %s %s %s: %v", n.Template, n.Channel, n.Locale, err)
	}
	return m
}

// only returns the notifications on channel ch.
func only(ns []notification.Notification, ch notification.Channel) []notification.Notification {
	var out []notification.Notification
	for _, n := range ns {
		if n.Channel == ch {
			out = append(out, n)
		}
	}
	return out
}

// channelCount summarises a plan as "email:1 push:2".
func channelCount(ns []notification.Notification) string {
	var parts []string
	for _, ch := range notification.Known() {
		if c := len(only(ns, ch)); c > 0 {
			parts = append(parts, string(ch)+":"+strconv.Itoa(c))
		}
	}
	return strings.Join(parts, " ")
}

// writeTree writes files (path → content) under a new temporary directory.
func writeTree(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func failureClass(err error) string { return failure.ClassOf(err).String() }
