package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/dlq"
	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/preview"
	"github.com/gymhq/herald/suppress"
	"github.com/gymhq/herald/topics"
)

// The throwaway channel "pager" exists only in this file: a descriptor, a
// sender, and nothing anywhere else in the tree. TestThrowawayChannel
// proves that this is all a channel takes — herald plans, renders, lints,
// previews, sends, dead-letters, replays and suppresses it like the
// shipped ones. It registers only in a child process (the registry is
// global for a process), so the other tests keep the three shipped
// channels.
const throwawayEnv = "HERALD_TEST_THROWAWAY_CHANNEL"

var pager = struct {
	sync.Mutex
	sent    []*channels.Message
	dead    map[string]bool // addresses the "provider" says cannot exist
	timeout time.Duration   // HERALD_PAGER_TIMEOUT as New read it
}{dead: map[string]bool{}}

type pagerSender struct{}

func (pagerSender) Send(_ context.Context, m *channels.Message) (channels.Receipt, error) {
	pager.Lock()
	defer pager.Unlock()
	if pager.dead[m.To] {
		return channels.Receipt{}, failure.New(failure.Permanent, failure.ReasonInvalidAddress, errors.New("pager network: no such pager"))
	}
	pager.sent = append(pager.sent, m)
	return channels.Receipt{ProviderMessageID: fmt.Sprintf("pg_%d", len(pager.sent))}, nil
}

func (pagerSender) Close() error { return nil }

func init() {
	if os.Getenv(throwawayEnv) == "" {
		return
	}
	channels.Register(&channels.Descriptor{
		Spec: notification.Spec{
			Name: "pager",
			Check: func(to string) error {
				if !strings.HasPrefix(to, "PG-") || len(to) < 4 {
					return failure.New(failure.Permanent, failure.ReasonInvalidAddress, errors.New("not a pager number"))
				}
				return nil
			},
			Mask:       func(to string) string { return "PG-***" },
			SuppressOn: []string{string(failure.ReasonInvalidAddress)},
		},
		Doc:          "Pages through a pager network that exists only in a test.",
		Provider:     "pagernet",
		AddressField: "id",
		Addresses: func(p *events.Person) []string {
			if p.ID == "" {
				return nil
			}
			return []string{"PG-" + p.ID}
		},
		Parts: []channels.Part{{File: "txt", Field: channels.FieldText, Limit: 80, Name: "body"}},
		Settings: []config.Setting{{
			Name: "HERALD_PAGER_TIMEOUT", Default: "2s", Kind: "duration", Accepts: "100ms..10s",
			Doc:   "Deadline for one call to the pager network.",
			Check: config.CheckDuration(100*time.Millisecond, 10*time.Second),
		}},
		// Its stand-in for herald dev is the recording sender itself.
		Dev: func(channels.DevOptions) (*channels.DevFake, error) { return &channels.DevFake{Fake: &pager}, nil },
		New: func(b channels.Build) (channels.Sender, error) {
			pager.Lock()
			pager.timeout = b.Config.Duration("HERALD_PAGER_TIMEOUT")
			pager.Unlock()
			return pagerSender{}, nil
		},
	})
}

func TestThrowawayChannel(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	if os.Getenv(throwawayEnv) == "" {
		// Run this test again in a child process that registers the
		// channel, and report its verdict.
		cmd := exec.Command(os.Args[0], "-test.run=^TestThrowawayChannel$", "-test.v", "-test.timeout=5m")
		cmd.Env = append(os.Environ(), throwawayEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("--- PASS: TestThrowawayChannel")) {
			t.Fatalf("child process: %v\n%s", err, out)
		}
		return
	}

	// Its variable is checked at start like any other, naming itself.
	vars := map[string]string{"HERALD_KAFKA_BROKERS": "127.0.0.1:9092", "HERALD_REDIS_URL": "redis://127.0.0.1:6379/0", "HERALD_PAGER_TIMEOUT": "forever"}
	if _, err := config.Load([]string{"--role", "pager"}, func(k string) string { return vars[k] }); err == nil || !strings.HasPrefix(err.Error(), "HERALD_PAGER_TIMEOUT") {
		t.Errorf("HERALD_PAGER_TIMEOUT=forever: %v, want an error naming it", err)
	}
	vars["HERALD_PAGER_TIMEOUT"] = "750ms"
	if cfg, err := config.Load([]string{"--role", "pager"}, func(k string) string { return vars[k] }); err != nil || cfg.Duration("HERALD_PAGER_TIMEOUT") != 750*time.Millisecond {
		t.Errorf("HERALD_PAGER_TIMEOUT=750ms: %v", err)
	}

	// Template content is the only thing a product team writes: a rule
	// that pages the member, and the page in English.
	dir := t.TempDir()
	folder := filepath.Join(dir, "gym.booking.confirmed")
	write := func(name, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(folder, "routing.yaml"), "description: A member booked a class; page them.\n"+
		"notifications:\n  - recipients: member\n    channels: [pager]\n")
	write(filepath.Join(folder, "pager.en.txt"), "Booked: {{.class_name}} at {{.class_location}}, {{.class_start_time}}.\n")
	sample, err := os.ReadFile("../../templates/gym.booking.confirmed/samples/member-en.json")
	if err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(folder, "samples", "member-en.json"), string(sample))

	// Linted: the tree passes; a locale without its pager part is named.
	var stdout, stderr bytes.Buffer
	if code := runTemplates([]string{"lint", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("lint: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	broken := t.TempDir()
	write(filepath.Join(broken, "gym.booking.confirmed", "routing.yaml"), "description: x\nnotifications:\n  - recipients: member\n    channels: [pager]\n")
	write(filepath.Join(broken, "gym.booking.confirmed", "samples", "member-en.json"), string(sample))
	stdout.Reset()
	stderr.Reset()
	if code := runTemplates([]string{"lint", broken}, &stdout, &stderr); code == 0 || !strings.Contains(stdout.String()+stderr.String(), "pager.en.txt") {
		t.Errorf("lint of a rule without its pager template: exit %d, want a problem naming pager.en.txt\n%s%s", code, stdout.String(), stderr.String())
	}

	// Rendered, as `herald templates render` shows it.
	stdout.Reset()
	stderr.Reset()
	if code := runTemplates([]string{"render", "--dir", dir, "gym.booking.confirmed"}, &stdout, &stderr); code != 0 ||
		!strings.Contains(stdout.String(), "Booked: Spin 45 at Studio 2, Shoreditch") {
		t.Errorf("render: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}

	// Previewed.
	pv, err := preview.New(preview.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	pv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if body := rec.Body.String(); rec.Code != 200 || !strings.Contains(body, "pager") || !strings.Contains(body, "Booked: Spin 45") {
		t.Errorf("preview: %d, page lacks the pager card", rec.Code)
	}

	// Planned and sent by the real fleet, on its own topic and group.
	redis := redistest.Start(t)
	env, _ := newTestEnvWith(t, 2, redis, dir)
	if !strings.Contains(strings.Join(topics.Owned(), ","), topics.Channel("pager")) {
		t.Errorf("topics %v lack the pager topic", topics.Owned())
	}
	startFleet(t, env)
	ctx := context.Background()
	event := func(id, member string) []byte {
		s := strings.Replace(string(sample), `"id": "evt_01JD8X3R6Y"`, `"id": "`+id+`"`, 1)
		return []byte(strings.ReplaceAll(s, `"mem_emma"`, `"`+member+`"`))
	}
	pager.Lock()
	pager.dead["PG-mem_gone"] = true
	pager.Unlock()
	publish := func(id, member string) {
		t.Helper()
		if err := env.publishEvent(ctx, []byte("cls_spin_0700"), event(id, member)); err != nil {
			t.Fatal(err)
		}
	}
	publish("evt_page_1", "mem_emma")
	publish("evt_page_2", "mem_gone") // dead: dead-lettered, then suppressed
	waitFor(t, "the page to mem_emma", func() bool { return len(sentTo("PG-mem_emma")) == 1 })
	pager.Lock()
	if pager.timeout != 2*time.Second {
		t.Errorf("the sender was built with HERALD_PAGER_TIMEOUT %v, want its default 2s", pager.timeout)
	}
	pager.Unlock()
	if m := sentTo("PG-mem_emma")[0]; !strings.HasPrefix(m.Text, "Booked: Spin 45 at Studio 2, Shoreditch, 07:00") {
		t.Errorf("sent text %q", m.Text)
	}

	// Dead-lettered with its reason and channel, decodable by herald dlq.
	var entry *dlq.Entry
	waitFor(t, "the dead page in the DLQ", func() bool {
		for _, m := range readAll(t, env.brokers(), topics.DLQ) {
			if e, err := dlq.Decode(fromKafka(m)); err == nil && e.Channel == "pager" {
				entry = e
				return true
			}
		}
		return false
	})
	if entry.Reason != string(failure.ReasonInvalidAddress) {
		t.Errorf("DLQ entry reason %q", entry.Reason)
	}

	// Suppressed: the provider's verdict put the pager on the list, so the
	// next page to it is not tried.
	list := suppress.NewRedis(redis.Client(), "", nil)
	if e, ok, err := list.Lookup(ctx, "pager", "PG-mem_gone"); err != nil || !ok || e.Reason != string(failure.ReasonInvalidAddress) {
		t.Fatalf("suppression of PG-mem_gone: %+v, %v, %v", e, ok, err)
	}
	pager.Lock()
	delete(pager.dead, "PG-mem_gone") // it would work now: only the list stops it
	pager.Unlock()
	publish("evt_page_3", "mem_gone")
	publish("evt_page_4", "mem_emma")
	waitFor(t, "the second page to mem_emma", func() bool { return len(sentTo("PG-mem_emma")) == 2 })
	waitDrained(t, env)
	if n := len(sentTo("PG-mem_gone")); n != 0 {
		t.Errorf("%d pages to a suppressed pager", n)
	}

	// Replayed: once the operator lifts the suppression, `herald dlq
	// replay --channel pager` sends the dead letter.
	if removed, err := list.Remove(ctx, "pager", "PG-mem_gone"); err != nil || !removed {
		t.Fatalf("remove: %v, %v", removed, err)
	}
	if code := cmdDLQ([]string{"replay", "--channel", "pager", "--kafka-brokers", strings.Join(env.brokers(), ",")}); code != 0 {
		t.Fatalf("dlq replay: exit %d", code)
	}
	waitFor(t, "the replayed page", func() bool { return len(sentTo("PG-mem_gone")) == 1 })
	if got := sentTo("PG-mem_gone")[0].NotificationID; got != entry.NotificationID {
		t.Errorf("replayed notification %s, want the dead letter's %s", got, entry.NotificationID)
	}
}

func sentTo(to string) []*channels.Message {
	pager.Lock()
	defer pager.Unlock()
	var out []*channels.Message
	for _, m := range pager.sent {
		if m.To == to {
			out = append(out, m)
		}
	}
	return out
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
