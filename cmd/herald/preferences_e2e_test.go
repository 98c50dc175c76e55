package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gymhq/herald/internal/poll"
	"github.com/gymhq/herald/internal/redistest"
	"go.uber.org/zap"
)

// TestPreferencesEndToEnd runs the fleet with its gateway on a real
// Redis. A member turns SMS off over HTTP with her session's token, and
// the next event that would text her sends no SMS (its push still goes).
// Then the class-cancellation email she gets (an "updates" email) carries a one-click
// unsubscribe link (RFC 8058); a mail provider's POST to it switches
// "updates" email off, and the next cancellation sends her no email; a
// forged link is refused; her booking confirmations (transactional) still
// come and carry no link.
func TestPreferencesEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	redis := redistest.Start(t)
	addr := freeAddr(t)
	env, err := newDevEnv(devOptions{KafkaAddr: "127.0.0.1:0", Partitions: 2, RedisURL: redis.URL(), CallbackBase: "http://" + addr, Log: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	startFleet(t, env)
	srv, err := serveHTTP(addr, env.fleet, env.routes)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	base := "http://" + addr
	maya := member{id: "mem_pref_1", email: "maya@example.com", phone: "+447700900777", token: "fcm_maya_0001"}

	tok := httpText(t, http.MethodGet, base+"/dev/token?sub="+maya.id, "", nil)
	put := httpText(t, http.MethodPut, base+"/v1/preferences", `{"channels":{"sms":false}}`, map[string]string{
		"Authorization": "Bearer " + tok, "Content-Type": "application/json"})
	var view struct {
		Channels map[string]bool `json:"channels"`
	}
	if err := json.Unmarshal([]byte(put), &view); err != nil || view.Channels["sms"] || !view.Channels["push"] {
		t.Fatalf("PUT answered %s (%v)", put, err)
	}

	publish(t, env, memberEvent(t, "gym.waitlist.promoted", "evt_pref_1", maya))
	poll.Until(t, time.Minute, "the waitlist push", func() bool { return deliveredTo(env.outbox, maya.token) == 1 })
	waitDrained(t, env)
	if n := deliveredTo(env.outbox, maya.phone); n != 0 {
		t.Fatalf("%d SMS after she turned SMS off", n)
	}

	publish(t, env, memberEvent(t, "gym.class.cancelled", "evt_pref_2", maya), memberEvent(t, "gym.booking.confirmed", "evt_pref_3", maya))
	poll.Until(t, time.Minute, "two emails", func() bool { return deliveredTo(env.outbox, maya.email) == 2 })
	var link string
	for _, d := range env.outbox.All() {
		if d.To != maya.email {
			continue
		}
		lu, post := d.Meta["list_unsubscribe"], d.Meta["list_unsubscribe_post"]
		if strings.HasPrefix(d.Subject, "You're booked") {
			if lu != "" {
				t.Errorf("the transactional booking email carries List-Unsubscribe %q", lu)
			}
			continue
		}
		if post != "List-Unsubscribe=One-Click" || !strings.HasPrefix(lu, "<"+base+"/v1/unsubscribe?") {
			t.Fatalf("the class-cancellation email's headers: List-Unsubscribe %q, List-Unsubscribe-Post %q", lu, post)
		}
		link = strings.Trim(lu, "<>")
	}
	if link == "" {
		t.Fatal("no class-cancellation email")
	}
	u, _ := url.Parse(link)
	forged := u.Query()
	forged.Set("token", forged.Get("token")+"x")
	if code := httpCode(t, http.MethodPost, base+u.Path+"?"+forged.Encode(), "List-Unsubscribe=One-Click"); code < 400 || code >= 500 {
		t.Fatalf("a forged token answered %d", code)
	}
	if code := httpCode(t, http.MethodGet, link, ""); code != http.StatusOK { // a scanner's prefetch changes nothing
		t.Fatalf("GET of the link answered %d", code)
	}
	if code := httpCode(t, http.MethodPost, link, "List-Unsubscribe=One-Click"); code != http.StatusOK {
		t.Fatalf("the one-click POST answered %d", code)
	}
	publish(t, env, memberEvent(t, "gym.class.cancelled", "evt_pref_4", maya), memberEvent(t, "gym.booking.confirmed", "evt_pref_5", maya))
	poll.Until(t, time.Minute, "the second booking email", func() bool { return deliveredTo(env.outbox, maya.email) == 3 })
	waitDrained(t, env)
	n := 0
	for _, d := range env.outbox.All() {
		if d.To == maya.email && !strings.HasPrefix(d.Subject, "You're booked") {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d class-cancellation emails, want 1: the second came after she unsubscribed", n)
	}
}

func httpCode(t *testing.T, method, u, body string) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), method, u, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body) //nolint:errcheck // drained
	resp.Body.Close()
	return resp.StatusCode
}

func httpText(t *testing.T, method, u, body string, hdr map[string]string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), method, u, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d %s", method, u, resp.StatusCode, b)
	}
	return string(b)
}
