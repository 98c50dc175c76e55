package main

import (
	"bytes"
	"context"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gymhq/herald/internal/poll"
	"github.com/gymhq/herald/sinks"
	"github.com/gymhq/herald/templates"
)

const guestPass = "gym.guest_pass.issued"

// docFiles extracts the worked example of docs/templates.md: every fenced
// block preceded by <!-- file: PATH -->.
func docFiles(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "templates.md"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)<!-- file: (\\S+) -->\n```[a-z]*\n(.*?)\n```")
	files := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		files[m[1]] = m[2] + "\n"
	}
	if len(files) < 9 {
		t.Fatalf("docs/templates.md has %d example files, want the whole %s folder", len(files), guestPass)
	}
	return files
}

// shippedTree copies templates/ (without golden files) into a new directory,
// as a team would start a ConfigMap from the repository.
func shippedTree(t *testing.T) string {
	t.Helper()
	src, dst := filepath.Join("..", "..", "templates"), t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		switch {
		case d.IsDir() && rel == "testdata":
			return filepath.SkipDir
		case d.IsDir():
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		case !strings.Contains(rel, string(filepath.Separator)) && rel != templates.StaffFile && rel != templates.CategoriesFile:
			return nil // Go files and the README
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// startDev runs the whole fleet on dir, reloading it every second as
// herald dev does.
func startDev(t *testing.T, dir string) (*devEnv, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	env, err := newDevEnv(devOptions{KafkaAddr: "127.0.0.1:0", Partitions: 2, Log: jsonLogger(logs), TemplatesDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- env.fleet.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("fleet run: %v", err)
		}
		env.Close()
	})
	return env, logs
}

// publishSample publishes a sample file of dir's guest-pass folder, with
// its id replaced so that each call is a new event.
func publishSample(t *testing.T, env *devEnv, dir, name, id string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, guestPass, "samples", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	raw = regexp.MustCompile(`"id": "evt_[A-Z0-9]+"`).ReplaceAll(raw, []byte(`"id": "`+id+`"`))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := env.publishEvent(ctx, []byte(id), raw); err != nil {
		t.Fatal(err)
	}
}

func waitDeliveries(t *testing.T, env *devEnv, n int) []sinks.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := env.outbox.Wait(ctx, n); err != nil {
		t.Fatalf("delivered %d of %d: %v", env.outbox.Len(), n, err)
	}
	return env.outbox.All()
}

// counter reads a counter series from the fleet's registry.
func counter(t *testing.T, reg prometheus.Gatherer, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func byAddress(ds []sinks.Delivery) map[string]sinks.Delivery {
	out := map[string]sinks.Delivery{}
	for _, d := range ds {
		out[d.Channel+" "+d.To] = d
	}
	return out
}

// TestDocWorkedExample follows docs/templates.md: the worked example's
// files, added to a copy of the shipped tree with no Go code, lint clean
// and are delivered end to end through the real pipeline (in-process
// Kafka, SMTP server, Twilio and FCM fakes) with HERALD_TEMPLATES_DIR
// pointing at the tree.
func TestDocWorkedExample(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	dir := shippedTree(t)
	writeFiles(t, dir, docFiles(t))

	var out, errb bytes.Buffer
	if code := runTemplates([]string{"lint", dir}, &out, &errb); code != 0 {
		t.Fatalf("lint of the worked example exits %d:\n%s%s", code, out.String(), errb.String())
	}

	env, _ := startDev(t, dir)
	if !env.fleet.templates.Known(guestPass) {
		t.Fatalf("%s not served; have %v", guestPass, env.fleet.templates.Current().EventTypes())
	}
	// One sample through the preview's send button on the dev page (a
	// fresh id each press), one as the producer would publish it.
	resp, err := http.PostForm("http://"+mustServe(t, env)+"/templates/publish",
		url.Values{"type": {guestPass}, "sample": {"guest-with-email"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Path != "/templates/" || resp.StatusCode != http.StatusOK {
		t.Fatalf("send button: %s, landed on %s", resp.Status, resp.Request.URL)
	}
	publishSample(t, env, dir, "guest-phone-only", "evt_doc_2")
	got := byAddress(waitDeliveries(t, env, 4))
	want := map[string][]string{
		"email priya.shah@example.com": {"Your guest pass for Shoreditch, Saturday 28 November", "Show this code at the front desk: GP-7Q2M", "10:00–12:00"},
		"push fcm_tok_emma_iphone":     {"Priya Shah is on the list", "We've sent Priya Shah their guest pass for Saturday 28 November at 10:00."},
		"sms +447700900654":            {"Oliver Bennett invited you to Shoreditch on Sunday 29 November at 17:30. Show code GP-3XK9 at the front desk."},
		"push fcm_tok_oliver_pixel":    {"Tomás Ruiz is on the list"},
	}
	for addr, parts := range want {
		d, ok := got[addr]
		if !ok {
			t.Errorf("nothing delivered to %s; got %v", addr, got)
			continue
		}
		all := d.Subject + "\n" + d.Title + "\n" + d.Text
		for _, p := range parts {
			if !strings.Contains(all, p) {
				t.Errorf("%s: %q not in\n%s", addr, p, all)
			}
		}
	}
	if len(got) != len(want) {
		t.Errorf("delivered to %d addresses, want %d: %v", len(got), len(want), got)
	}
}

// TestTemplatesHotReload starts the fleet on a tree without the new event
// type, adds its folder while the fleet runs and sees it delivered without
// a restart, then breaks a template and sees the change refused (logged
// with file:line, counted) while the previous set keeps delivering.
func TestTemplatesHotReload(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	dir := shippedTree(t)
	env, logs := startDev(t, dir)
	reg := env.fleet.metrics.Registry
	if env.fleet.templates.Known(guestPass) {
		t.Fatal("the shipped tree already routes the example type")
	}

	// Unknown at first: counted and skipped.
	publishSample(t, env, filepathOfDoc(t), "guest-with-email", "evt_hot_0")
	poll.Until(t, 30*time.Second, "the unknown event to be skipped", func() bool {
		return counter(t, reg, "herald_events_total", "outcome", "unknown_type") == 1
	})

	// Add the folder: served without a restart, then delivered.
	v0 := env.fleet.templates.Current().Version()
	files := docFiles(t)
	writeFiles(t, dir, files)
	poll.Until(t, 30*time.Second, "the new folder to be served", func() bool { return env.fleet.templates.Known(guestPass) })
	if counter(t, reg, "herald_templates_reloads_total", "result", "ok") != 1 {
		t.Error("reload not counted as ok")
	}
	v1 := env.fleet.templates.Current().Version()
	if v1 == v0 {
		t.Errorf("version did not change: %s", v1)
	}
	publishSample(t, env, dir, "guest-with-email", "evt_hot_1")
	got := byAddress(waitDeliveries(t, env, 2))
	if _, ok := got["email priya.shah@example.com"]; !ok {
		t.Fatalf("guest email not delivered after the reload: %v", got)
	}

	// Break the SMS template: refused, logged with file:line, counted; the
	// previous set keeps serving and delivering.
	sms := filepath.Join(dir, guestPass, "sms.en.txt")
	good := files[guestPass+"/sms.en.txt"]
	writeFiles(t, dir, map[string]string{guestPass + "/sms.en.txt": "Hi {{.member_name\n"})
	poll.Until(t, 30*time.Second, "the broken change to be refused", func() bool {
		return counter(t, reg, "herald_templates_reloads_total", "result", "refused") == 1
	})
	if v := env.fleet.templates.Current().Version(); v != v1 {
		t.Errorf("serving %s after a refused change, want %s", v, v1)
	}
	refused := ""
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "template change refused") {
			refused = l
		}
	}
	if !strings.Contains(refused, guestPass+"/sms.en.txt:2: does not parse") {
		t.Errorf("refusal log line does not name file:line: %s", refused)
	}
	publishSample(t, env, dir, "guest-phone-only", "evt_hot_2")
	got = byAddress(waitDeliveries(t, env, 4))
	if d, ok := got["sms +447700900654"]; !ok || !strings.HasPrefix(d.Text, "Oliver Bennett invited you") {
		t.Fatalf("SMS with the previous template not delivered: %+v", d)
	}

	// A fixed file is taken again.
	if err := os.WriteFile(sms, []byte("Good news! "+good), 0o644); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "the fix to be served", func() bool {
		return counter(t, reg, "herald_templates_reloads_total", "result", "ok") == 2
	})
	if v := env.fleet.templates.Current().Version(); v == v1 {
		t.Errorf("still serving %s after the fix", v)
	}
	if n := env.outbox.Len(); n != 4 {
		t.Errorf("%d deliveries, want 4 (the unknown-type event must stay skipped)", n)
	}
}

// filepathOfDoc writes the worked example's folder to a directory of its
// own, for publishing a sample before the fleet's tree has it.
func filepathOfDoc(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, docFiles(t))
	if _, err := templates.LoadDir(dir); err != nil {
		t.Fatalf("the worked example alone: %v", err)
	}
	return dir
}
