package main

import (
	"bytes"
	"encoding/json"
	"github.com/gymhq/herald/notification"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runT(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runTemplates(args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestLintFixtures runs `herald templates lint DIR` over the broken trees
// in testdata/lint: each must exit 1 and print exactly the reviewed
// file:line: problem lines in its want.txt.
func TestLintFixtures(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("testdata", "lint", "*"))
	if err != nil || len(dirs) < 10 {
		t.Fatalf("fixtures: %v %v", dirs, err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join(dir, "want.txt"))
			if err != nil {
				t.Fatal(err)
			}
			code, out, stderr := runT(t, "lint", dir)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			// A fixture names the registered channels as {{channels}}, so
			// a channel added by its folder changes no fixture.
			want = []byte(strings.ReplaceAll(string(want), "{{channels}}", notification.Names()))
			if out != string(want) {
				t.Errorf("lint printed:\n%s\nwant:\n%s", out, want)
			}
			if !strings.Contains(stderr, "problem(s); the tree would be refused") {
				t.Errorf("stderr: %s", stderr)
			}
		})
	}
}

func TestLintShipped(t *testing.T) {
	for _, args := range [][]string{{"lint"}, {"lint", filepath.Join("..", "..", "templates")}} {
		code, out, stderr := runT(t, args...)
		if code != 0 || out != "" || !strings.Contains(stderr, "ok, 6 event types") {
			t.Errorf("%v: exit %d\n%s%s", args, code, out, stderr)
		}
	}
}

func TestRenderCommand(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
		code int
	}{
		{[]string{"render", "gym.waitlist.promoted", "--channel", "sms", "--locale", "es", "--sample", "member-en"},
			[]string{"sms · locale es · to +447700900456 (mem_oliver)", "encoding: GSM-7 · 148 characters · 1 segment(s)", "Buenas noticias, Oliver"}, 0},
		{[]string{"render", "gym.booking.confirmed", "--channel", "email", "--locale", "es-MX", "--sample", "member-en"},
			[]string{"(rendered from es templates)", "subject: ", "attachment: invite.ics (text/calendar; method=REQUEST", "--- text ---", "--- html ---\n<!DOCTYPE html>"}, 0},
		{[]string{"render", "--channel", "push", "gym.class.reminder"},
			[]string{"title: ", "body: ", "data.event_type: gym.class.reminder", "payload: "}, 0},
		{[]string{"render", "gym.nope"}, nil, 1},
		{[]string{"render", "gym.waitlist.promoted", "--channel", "sms", "--sample", "member-es"},
			[]string{"sms · locale es-MX (rendered from es templates) · to +34600987654 (mem_marta)", "Buenas noticias, Marta"}, 0},
		{[]string{"render", "gym.waitlist.promoted", "--sample", "nobody"}, nil, 1},
		{[]string{"render", "gym.waitlist.promoted", "--channel", "fax"}, nil, 2},
		{[]string{"render"}, nil, 2},
	} {
		code, out, stderr := runT(t, tc.args...)
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d\n%s", tc.args, code, tc.code, stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: output lacks %q:\n%s", tc.args, w, out)
			}
		}
	}
}

// TestTestCommand checks `herald templates test` against a copy of the
// shipped tree and its golden files: clean, then a changed copy is caught
// with file:line, then --update rewrites the golden file.
func TestTestCommand(t *testing.T) {
	dir := shippedTree(t)
	src := filepath.Join("..", "..", "templates", "testdata")
	if err := os.CopyFS(filepath.Join(dir, "testdata"), os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := runT(t, "test", dir); code != 0 {
		t.Fatalf("clean tree: exit %d\n%s%s", code, out, stderr)
	}
	sms := filepath.Join(dir, "gym.waitlist.promoted", "sms.en.txt")
	b, _ := os.ReadFile(sms)
	if err := os.WriteFile(sms, []byte(strings.Replace(string(b), "Good news", "Great news", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runT(t, "test", dir)
	golden := dir + "/testdata/golden/gym.waitlist.promoted/member-en/mem_oliver.sms.en.txt:6: differs from the rendering"
	if code != 1 || !strings.Contains(out, golden) || !strings.Contains(out, `rendered: "length: 129"`) {
		t.Fatalf("changed copy: exit %d\n%s", code, out)
	}
	if code, out, _ := runT(t, "test", "--update", dir); code != 0 || !strings.Contains(out, "updated ") {
		t.Fatalf("--update: exit %d\n%s", code, out)
	}
	if code, out, _ := runT(t, "test", dir); code != 0 {
		t.Fatalf("after --update: exit %d\n%s", code, out)
	}
}

// -h is asked for: usage on stdout and exit 0, as every other command's -h;
// the templates subcommands exited 2, as for a mistake (an outside
// tester's find). A mistake still exits 2.
func TestTemplatesHelp(t *testing.T) {
	for _, sub := range []string{"lint", "render", "test"} {
		if code, out, _ := runT(t, sub, "-h"); code != 0 || !strings.Contains(out, "usage: herald templates "+sub) {
			t.Errorf("templates %s -h: exit %d, stdout %q", sub, code, out)
		}
		if code, _, errOut := runT(t, sub, "--nope"); code != 2 || !strings.Contains(errOut, "usage: herald templates "+sub) {
			t.Errorf("templates %s --nope: exit %d, stderr %q", sub, code, errOut)
		}
	}
}

// A sample's address is shown as written, never cleaned, but escaped when
// it holds a character a terminal would act on: an outside tester's
// "emma\u202e@example.com" turned the rest of render's line backwards.
func TestRenderShowsAnUnprintableAddressEscaped(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../../templates")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "gym.booking.confirmed", "samples", "member-en.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	ev["data"].(map[string]any)["member"].(map[string]any)["email"] = "emma\u202e@example.com"
	if b, err = json.Marshal(ev); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runT(t, "render", "gym.booking.confirmed", "--channel", "email", "--sample", "member-en", "--dir", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, ` · to "emma\u202e@example.com" (`) || strings.Contains(out, "\u202e") {
		t.Errorf("the address is not shown escaped:\n%s", out)
	}
}
