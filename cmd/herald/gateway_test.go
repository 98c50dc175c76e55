package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/gymhq/herald/feed"
	"github.com/gymhq/herald/gateway/jwtauth"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/internal/ssetest"
	"github.com/gymhq/herald/sim"
)

// gatewayProc is a `herald run --role gateway` process.
type gatewayProc struct {
	*heraldProc
	api string // http://host:port of HERALD_GATEWAY_ADDR
}

func startGateway(t *testing.T, env *devEnv, redisURL, name string) *gatewayProc {
	t.Helper()
	api := freeAddr(t)
	p := startHerald(t, []string{
		"HERALD_REDIS_URL=" + redisURL, // no Kafka: a gateway needs none
		"HERALD_GATEWAY_JWT_SECRET=" + env.cfg.Gateway.JWTSecret, "HERALD_GATEWAY_ADDR=" + api,
		"HERALD_INSTANCE_ID=" + name, "HERALD_GATEWAY_HEARTBEAT=1s",
	}, "--role", "gateway")
	p.waitProbe(t, time.Minute, "/readyz", 200)
	return &gatewayProc{heraldProc: p, api: "http://" + api}
}

// token mints a session token for person with the dev fleet's key.
func token(t *testing.T, env *devEnv, person string, ttl time.Duration) string {
	t.Helper()
	tok, err := jwtauth.MintHS256([]byte(env.cfg.Gateway.JWTSecret), person, time.Now(), ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// drain reads notification events until n distinct items arrived, failing
// on a duplicate or a timeout; it returns their ids and the last position.
func drain(t *testing.T, name string, events <-chan ssetest.Event, seen map[string]bool, n int, last *string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for len(seen) < n {
		select {
		case e, ok := <-events:
			if !ok {
				return // the stream ended: the caller reconnects
			}
			if e.Kind != "notification" {
				continue
			}
			var it feed.Item
			if err := json.Unmarshal(e.Data, &it); err != nil {
				t.Fatalf("%s: %s: %v", name, e.Data, err)
			}
			if seen[it.ID] {
				t.Fatalf("%s: %s shown twice", name, it.ID)
			}
			seen[it.ID] = true
			if e.ID != "" {
				*last = e.ID
			}
		case <-timeout:
			t.Fatalf("%s: %d of %d items", name, len(seen), n)
		}
	}
}

// TestGatewayProcesses runs two gateway processes against the fleet's Redis,
// as two pods behind a load balancer: a member with an SSE session on one
// and a WebSocket on the other gets every notification once on each, a
// replay of the events adds nothing, a SIGKILLed gateway's client resumes
// on the other with Last-Event-ID and loses and repeats nothing, and bad,
// expired and foreign tokens get 401 (or see nothing of the member).
func TestGatewayProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	redis := redistest.Start(t)
	env, _ := newTestEnv(t, 3, redis)
	startFleet(t, env)
	gw1, gw2 := startGateway(t, env, redis.URL(), "gw1"), startGateway(t, env, redis.URL(), "gw2")
	const member = "mem_gw"
	tok := token(t, env, member, time.Hour)

	sse, err := ssetest.Open(gw1.api+"/v1/feed/stream", tok, "")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { sse.Close() }()
	ctx := context.Background()
	ws, _, err := websocket.Dial(ctx, strings.Replace(gw2.api, "http", "ws", 1)+"/v1/feed/ws?access_token="+tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	wsEvents := make(chan ssetest.Event, 1000)
	go func() {
		defer close(wsEvents)
		for {
			_, b, err := ws.Read(ctx)
			if err != nil {
				return
			}
			if !bytes.HasPrefix(b, []byte(`{"type"`)) {
				wsEvents <- ssetest.Event{Kind: "notification", Data: b}
			}
		}
	}()
	time.Sleep(200 * time.Millisecond)

	g := sim.New(sim.Options{Seed: 41, Prefix: "gw"})
	var evs []sim.Event
	for i := 0; i < 30; i++ {
		evs = append(evs, g.MakeFor("gym.booking.confirmed", member))
	}
	publish := func(from, to int) {
		for _, ev := range evs[from:to] {
			if err := env.publishEvent(ctx, ev.Key, ev.Value); err != nil {
				t.Error(err)
			}
		}
	}
	publish(0, 10)
	publish(0, 10) // a replay
	sseSeen, wsSeen := map[string]bool{}, map[string]bool{}
	var last, wsLast string
	drain(t, "sse on gw1", sse.Events, sseSeen, 10, &last)
	drain(t, "ws on gw2", wsEvents, wsSeen, 10, &wsLast)

	// SIGKILL gw1 while the rest streams in; its client resumes on gw2.
	go publish(10, 30)
	drain(t, "sse on gw1", sse.Events, sseSeen, 15, &last)
	if err := gw1.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-gw1.exited
	drain(t, "sse on gw1 until it dies", sse.Events, sseSeen, 30, &last) // returns when the stream ends
	beforeKill := len(sseSeen)
	sse.Close()
	sse, err = ssetest.Open(gw2.api+"/v1/feed/stream", tok, last)
	if err != nil {
		t.Fatal(err)
	}
	drain(t, "sse resumed on gw2", sse.Events, sseSeen, 30, &last)
	drain(t, "ws on gw2", wsEvents, wsSeen, 30, &wsLast)
	waitDrained(t, env)
	publish(0, 30) // the whole stream again
	waitDrained(t, env)
	for name, ch := range map[string]<-chan ssetest.Event{"sse": sse.Events, "ws": wsEvents} {
		select {
		case e := <-ch:
			if e.Kind == "notification" {
				t.Errorf("%s: after a replay: %s", name, e.Data)
			}
		case <-time.After(300 * time.Millisecond):
		}
	}
	items, unread, err := env.fleet.feed.List(ctx, member, 200)
	if err != nil || len(items) != 30 || unread != 30 {
		t.Fatalf("feed holds %d items (%d unread), %v; want 30", len(items), unread, err)
	}

	// Tokens.
	other, _ := jwtauth.MintHS256([]byte("another-issuer-key-0123456789abcdef"), member, time.Now(), time.Hour)
	expired, _ := jwtauth.MintHS256([]byte(env.cfg.Gateway.JWTSecret), member, time.Now().Add(-2*time.Hour), time.Hour)
	for name, tk := range map[string]string{"none": "", "garbage": "not.a.jwt", "expired": expired, "foreign signer": other} {
		for _, path := range []string{"/v1/feed", "/v1/feed/stream"} {
			req, _ := http.NewRequest("GET", gw2.api+path, nil)
			if tk != "" {
				req.Header.Set("Authorization", "Bearer "+tk)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s token on %s: %s, want 401", name, path, resp.Status)
			}
		}
	}
	// Another person's valid token sees and marks nothing of the member's.
	otherPerson := token(t, env, "mem_someone_else", time.Hour)
	req, _ := http.NewRequest("POST", gw2.api+"/v1/feed/"+items[0].ID+"/read", nil)
	req.Header.Set("Authorization", "Bearer "+otherPerson)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("marking another person's item: %s, want 404", resp.Status)
	}
	if _, unread, _ := env.fleet.feed.List(ctx, member, 1); unread != 30 {
		t.Errorf("unread = %d after another person's mark, want 30", unread)
	}
	t.Logf("30 notifications, each once on an SSE session (%d shown before its gateway was SIGKILLed, the rest after resuming on the other) and on a WebSocket session; replays added nothing", beforeKill)
}
