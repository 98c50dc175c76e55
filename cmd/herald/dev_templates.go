package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gymhq/herald/preview"
	"github.com/gymhq/herald/templates"
)

// templateRoutes mounts the template preview at /templates/ on the dev
// page: the tree herald dev serves (--templates-dir, else the built-in
// one), with a button that publishes a sample event.
func (e *devEnv) templateRoutes(mux *http.ServeMux) error {
	srv, err := preview.New(preview.Options{Dir: e.cfg.TemplatesDir, Publish: e.publishSample})
	if err != nil {
		return err
	}
	mux.Handle("/templates/", http.StripPrefix("/templates", srv))
	mux.Handle("GET /templates", http.RedirectHandler("/templates/", http.StatusMovedPermanently))
	return nil
}

var sampleSeq atomic.Int64

// publishSample produces a sample event with a fresh id, so pressing the
// button again sends again instead of being recognised as a duplicate.
func (e *devEnv) publishSample(ctx context.Context, s templates.Sample) error {
	var ev map[string]any
	if err := json.Unmarshal(s.Raw, &ev); err != nil {
		return fmt.Errorf("%s: %w", s.File, err)
	}
	id := fmt.Sprintf("%v-%s-%d", ev["id"], strconv.FormatInt(time.Now().Unix()%100000, 36), sampleSeq.Add(1))
	ev["id"] = id
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return e.publishEvent(ctx, []byte(id), b)
}
