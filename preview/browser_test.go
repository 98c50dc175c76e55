package preview_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gymhq/herald/preview"
)

// chromium finds a headless-capable Chromium. Without one the browser
// tests skip, unless HERALD_REQUIRE_BROWSER=1 (make test sets it after
// installing Debian's chromium package), where they fail.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("HERALD_REQUIRE_BROWSER") == "1" {
		t.Fatal("HERALD_REQUIRE_BROWSER=1 but no chromium on PATH; install it with: apt-get install -y chromium (make deps does)")
	}
	t.Skip("no chromium on PATH (apt-get install -y chromium, or make deps); set HERALD_REQUIRE_BROWSER=1 to fail instead")
	return ""
}

// browse runs headless Chromium on url and returns the DOM as it stands
// after the page's scripts have had budget of virtual time (network
// fetches pause virtual time, so the page's polling completes within it).
// With screenshot set it writes a PNG of the page instead.
func browse(t *testing.T, bin, url string, budget time.Duration, screenshot string) string {
	t.Helper()
	args := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--hide-scrollbars", "--user-data-dir=" + t.TempDir(),
		fmt.Sprintf("--virtual-time-budget=%d", budget.Milliseconds()),
	}
	if screenshot != "" {
		args = append(args, "--screenshot="+screenshot, "--window-size=1400,2200")
	} else {
		args = append(args, "--dump-dom")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(args, url)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, errb.String())
	}
	return out.String()
}

// copyTree copies the shipped template tree (without its golden files).
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			if rel == "testdata" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if filepath.Ext(p) == ".go" || (!strings.Contains(rel, string(filepath.Separator)) && filepath.Ext(rel) != ".yaml") {
			return nil // Go files and the README; staff.yaml and categories.yaml are the tree's
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
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// article returns the card for a template, channel and locale in dom.
func article(t *testing.T, dom, template, channel, locale string) string {
	t.Helper()
	for _, a := range strings.Split(dom, "<article")[1:] {
		a = a[:strings.Index(a, "</article>")]
		if strings.Contains(a, `data-channel="`+channel+`"`) && strings.Contains(a, `data-locale="`+locale+`"`) &&
			strings.Contains(a, `data-template="`+template+`"`) {
			return a
		}
	}
	t.Fatalf("no %s %s %s card in the page", template, channel, locale)
	return ""
}

// TestPreviewInBrowser opens the preview of a template tree with two
// broken files in headless Chromium, checks what a template author sees,
// changes a file while the page is open and checks that the page shows
// the change, and leaves a screenshot for a person to look at.
func TestPreviewInBrowser(t *testing.T) {
	bin := chromium(t)
	dir := t.TempDir()
	copyTree(t, filepath.Join("..", "templates"), dir)

	// A tick (not in GSM-7) in the Spanish waitlist SMS, and a reminder
	// title that does not parse.
	smsES := filepath.Join(dir, "gym.waitlist.promoted", "sms.es.txt")
	orig, err := os.ReadFile(smsES)
	if err != nil {
		t.Fatal(err)
	}
	write(t, smsES, "✓ "+string(orig))
	write(t, filepath.Join(dir, "gym.class.reminder", "push.en.title.txt"), "{{.class_name")

	srv, err := preview.New(preview.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	// The first time the open page polls for the version, a person saves a
	// fix: the tick is gone and the English SMS has new copy.
	var once sync.Once
	var changed atomic.Bool
	smsEN := filepath.Join(dir, "gym.waitlist.promoted", "sms.en.txt")
	edit := func() {
		write(t, smsES, string(orig))
		en, err := os.ReadFile(smsEN)
		if err != nil {
			t.Error(err)
			return
		}
		write(t, smsEN, "Fresh copy! "+string(en))
	}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/version" && changed.Load() {
			once.Do(edit)
		}
		srv.ServeHTTP(w, r)
	}))
	defer hs.Close()

	// 1. The page as first shown.
	dom := browse(t, bin, hs.URL+"/", time.Second/2, "")
	for _, typ := range []string{"gym.booking.cancelled", "gym.booking.confirmed", "gym.class.cancelled", "gym.class.reminder", "gym.waitlist.promoted"} {
		if !strings.Contains(dom, `<section class="type" id="`+typ+`"`) {
			t.Errorf("no section for %s", typ)
		}
	}
	es := article(t, dom, "gym.waitlist.promoted", "sms", "es")
	for _, want := range []string{`class="encoding">UCS-2<`, `class="segments">3 segments<`, `<ul class="problems">`,
		`gym.waitlist.promoted/sms.es.txt:1:1: with samples/member-en.json: '✓' (U+2713) is not in GSM-7`} {
		if !strings.Contains(es, want) {
			t.Errorf("Spanish waitlist SMS card lacks %q:\n%s", want, es)
		}
	}
	en := article(t, dom, "gym.waitlist.promoted", "sms", "en")
	if !strings.Contains(en, `class="encoding">GSM-7<`) || !strings.Contains(en, `class="segments">1 segment<`) || strings.Contains(en, "problems") {
		t.Errorf("English waitlist SMS card:\n%s", en)
	}
	reminder := dom[strings.Index(dom, `id="gym.class.reminder"`):]
	reminder = reminder[:strings.Index(reminder, "</section>")]
	if !strings.Contains(reminder, "gym.class.reminder/push.en.title.txt:1: does not parse") {
		t.Errorf("reminder section does not show the parse error:\n%s", reminder)
	}
	email := article(t, dom, "gym.booking.confirmed", "email", "es")
	if !strings.Contains(email, `<iframe sandbox="" title="HTML part" srcdoc="`) || !strings.Contains(email, `<pre class="text">`) {
		t.Errorf("email card lacks the sandboxed HTML frame or the text part:\n%.2000s", email)
	}
	if !regexp.MustCompile(`id="problem-count">3 problems<`).MatchString(dom) {
		t.Errorf("page does not count 3 problems")
	}

	// 2. A file changes while the page is open.
	changed.Store(true)
	dom = browse(t, bin, hs.URL+"/", 6*time.Second, "")
	if !strings.Contains(dom, "Fresh copy!") {
		t.Fatalf("the open page did not show the changed file (version served %s)", srv.Version())
	}
	es = article(t, dom, "gym.waitlist.promoted", "sms", "es")
	if strings.Contains(es, "problems") || !strings.Contains(es, `class="encoding">GSM-7<`) {
		t.Errorf("after the fix the Spanish SMS card still shows a problem:\n%s", es)
	}
	if !strings.Contains(dom, `<code id="version">`+srv.Version()+`</code>`) {
		t.Errorf("page does not show the new version %s", srv.Version())
	}

	// 3. A screenshot for a person to look at, with the tick back.
	write(t, smsES, "✓ "+string(orig))
	out := filepath.Join("testdata", "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	shot, _ := filepath.Abs(filepath.Join(out, "preview.png"))
	browse(t, bin, hs.URL+"/?type=gym.waitlist.promoted&type=gym.class.reminder", time.Second/2, shot)
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 10_000 {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)
}
