package preview_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gymhq/herald/preview"
	"github.com/gymhq/herald/templates"
)

func get(t *testing.T, h http.Handler, target string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", target, nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

// TestPreviewHandler checks the page and its endpoints without a browser.
func TestPreviewHandler(t *testing.T) {
	dir := t.TempDir()
	copyTree(t, filepath.Join("..", "templates"), dir)
	var published []templates.Sample
	srv, err := preview.New(preview.Options{Dir: dir, Publish: func(_ context.Context, s templates.Sample) error {
		published = append(published, s)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}

	code, page := get(t, srv, "/")
	if code != 200 || strings.Count(page, `<section class="type"`) != 6 || !strings.Contains(page, `<span id="problem-count">no problems</span>`) {
		t.Fatalf("page: %d\n%.500s", code, page)
	}
	if !strings.Contains(page, `<form method="post" action="publish">`) {
		t.Error("no send buttons with Publish set")
	}
	_, only := get(t, srv, "/?type=gym.class.reminder")
	if strings.Count(only, `<section class="type"`) != 1 || !strings.Contains(only, `id="gym.class.reminder"`) {
		t.Error("?type did not filter")
	}
	_, v := get(t, srv, "/version")
	if strings.TrimSpace(v) != srv.Version() || !strings.HasPrefix(v, "sha256:") {
		t.Errorf("version %q, server %q", v, srv.Version())
	}

	// Publish a sample by name.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/publish", strings.NewReader(url.Values{"type": {"gym.class.reminder"}, "sample": {"member-with-push-en"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusSeeOther || len(published) != 1 || published[0].Event.Type != "gym.class.reminder" {
		t.Fatalf("publish: %d %v", rec.Code, published)
	}
	rec = httptest.NewRecorder()
	req = httptest.NewRequest("POST", "/publish?type=gym.class.reminder&sample=nope", nil)
	srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotFound {
		t.Errorf("unknown sample: %d", rec.Code)
	}

	// A change is picked up by the version endpoint; an unreadable tree is
	// shown as such.
	push := filepath.Join(dir, "gym.class.reminder", "push.en.title.txt")
	if err := os.WriteFile(push, []byte(strings.Repeat("Long title ", 8)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, v2 := get(t, srv, "/version")
	if v2 == v {
		t.Error("version did not change after an edit")
	}
	_, page = get(t, srv, "/?type=gym.class.reminder")
	if !strings.Contains(page, "gym.class.reminder/push.en.title.txt:1: with samples/member-with-push-en.json: renders 87 characters; want 1 to 65") {
		t.Errorf("title problem not on the page:\n%s", page)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	_, page = get(t, srv, "/")
	if !strings.Contains(page, `id="tree-error"`) {
		t.Error("removed tree not reported")
	}
}

func TestPreviewEmbedded(t *testing.T) {
	srv, err := preview.New(preview.Options{})
	if err != nil {
		t.Fatal(err)
	}
	code, page := get(t, srv, "/")
	if code != 200 || !strings.Contains(page, "templates built into herald") || strings.Contains(page, `action="publish"`) {
		t.Fatalf("%d\n%.300s", code, page)
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest("POST", "/publish?type=x&sample=y", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("publish without Publish: %d", rec.Code)
	}
}
