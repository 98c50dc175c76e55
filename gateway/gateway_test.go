package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gymhq/herald/feed"
	"github.com/gymhq/herald/gateway"
	"github.com/gymhq/herald/internal/logtest"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/internal/ssetest"
)

// testAuth takes "Bearer ok:<person>" (or ?access_token=ok:<person>): the
// token checks themselves are jwtauth's, tested there and end to end in
// cmd/herald.
// A token "ok:<person>@<unix seconds>" expires then.
func testAuth(r *http.Request) (string, time.Time, error) {
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if tok == "" {
		tok = r.URL.Query().Get("access_token")
	}
	if p, ok := strings.CutPrefix(tok, "ok:"); ok {
		if person, at, ok := strings.Cut(p, "@"); ok {
			sec, _ := strconv.ParseInt(at, 10, 64)
			return person, time.Unix(sec, 0), nil
		}
		return p, time.Time{}, nil
	}
	return "", time.Time{}, errors.New("bad token")
}

type pod struct {
	g   *gateway.Gateway
	srv *httptest.Server
	reg *prometheus.Registry
}

// startPods starts n gateways on one feed store, as n pods behind a load
// balancer would run.
func startPods(t *testing.T, store feed.Store, n int, tune func(*gateway.Options)) []*pod {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var pods []*pod
	for i := 0; i < n; i++ {
		reg := prometheus.NewRegistry()
		o := gateway.Options{Feed: store, Authenticate: testAuth, WriteTimeout: 2 * time.Second, Heartbeat: time.Second, Registerer: reg}
		if tune != nil {
			tune(&o)
		}
		g, err := gateway.New(o)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = g.Run(ctx) }()
		srv := httptest.NewServer(g.Handler())
		pods = append(pods, &pod{g: g, srv: srv, reg: reg})
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		for _, p := range pods {
			p.srv.Close()
		}
	})
	time.Sleep(100 * time.Millisecond) // the subscriptions
	return pods
}

type event = ssetest.Event

// sseClient is an open stream whose events tests read.
type sseClient struct {
	events <-chan event
	*ssetest.Client
}

func openSSE(t *testing.T, base, token, lastID string) *sseClient {
	t.Helper()
	c, err := ssetest.Open(base+"/v1/feed/stream", token, lastID)
	if err != nil {
		t.Fatalf("%s: %v", token, err)
	}
	t.Cleanup(c.Close)
	return &sseClient{events: c.Events, Client: c}
}

func (c *sseClient) close() { c.Close() }

// items collects n notification events, failing on a timeout.
func collect(t *testing.T, ch <-chan event, n int) []event {
	t.Helper()
	var out []event
	deadline := time.After(10 * time.Second)
	for len(out) < n {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatalf("stream ended after %d of %d events", len(out), n)
			}
			if e.Kind == "notification" {
				out = append(out, e)
			}
		case <-deadline:
			t.Fatalf("got %d of %d events", len(out), n)
		}
	}
	return out
}

func quiet(t *testing.T, ch <-chan event, d time.Duration) {
	t.Helper()
	select {
	case e := <-ch:
		if e.Kind == "notification" {
			t.Fatalf("unexpected event %s %s", e.ID, e.Data)
		}
	case <-time.After(d):
	}
}

func itemID(t *testing.T, data []byte) string {
	t.Helper()
	var it feed.Item
	if err := json.Unmarshal(data, &it); err != nil {
		t.Fatalf("item %s: %v", data, err)
	}
	return it.ID
}

func appendN(t *testing.T, s feed.Store, person string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if _, err := s.Append(context.Background(), person, feed.Item{ID: fmt.Sprint("n", i), Title: "t", Body: "b"}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
}

// wsClient reads a WebSocket's frames.
func openWS(t *testing.T, base, token string) chan event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/v1/feed/ws?access_token="+token, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ch := make(chan event, 1000)
	go func() {
		defer close(ch)
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			kind := "notification"
			if strings.HasPrefix(string(b), `{"type":"read"`) {
				kind = "read"
			}
			ch <- event{Kind: kind, Data: b}
		}
	}()
	t.Cleanup(func() { cancel(); c.CloseNow() })
	return ch
}

func redisStore(t *testing.T) (feed.Store, *redistest.Server) {
	srv := redistest.Start(t)
	return feed.NewRedis(srv.Client(), feed.Limits{}), srv
}

// TestSessionsOnTwoPods: a person with a stream on each of two pods (SSE on
// one, WebSocket on the other) gets every notification once on each, in
// order, replays included; another person gets none of them.
func TestSessionsOnTwoPods(t *testing.T) {
	store, _ := redisStore(t)
	pods := startPods(t, store, 2, nil)
	sse := openSSE(t, pods[0].srv.URL, "ok:mem_emma", "")
	ws := openWS(t, pods[1].srv.URL, "ok:mem_emma")
	other := openSSE(t, pods[1].srv.URL, "ok:mem_jo", "")
	time.Sleep(100 * time.Millisecond)

	appendN(t, store, "mem_emma", 0, 30)
	appendN(t, store, "mem_emma", 0, 30) // replays: nothing new
	appendN(t, store, "mem_emma", 30, 40)
	for name, ch := range map[string]<-chan event{"sse": sse.events, "ws": ws} {
		got := collect(t, ch, 40)
		for i, e := range got {
			if id := itemID(t, e.Data); id != fmt.Sprint("n", i) {
				t.Fatalf("%s: event %d is %s, want n%d", name, i, id, i)
			}
		}
		quiet(t, ch, 200*time.Millisecond)
	}
	quiet(t, other.events, 100*time.Millisecond)
}

// TestResume: a client that reconnects with Last-Event-ID, to another pod,
// gets exactly what it missed.
func TestResume(t *testing.T) {
	store, _ := redisStore(t)
	pods := startPods(t, store, 2, nil)
	c := openSSE(t, pods[0].srv.URL, "ok:p1", "")
	time.Sleep(50 * time.Millisecond)
	appendN(t, store, "p1", 0, 5)
	got := collect(t, c.events, 5)
	c.close()
	appendN(t, store, "p1", 5, 12) // while away
	c2 := openSSE(t, pods[1].srv.URL, "ok:p1", got[4].ID)
	got2 := collect(t, c2.events, 7)
	for i, e := range got2 {
		if id := itemID(t, e.Data); id != fmt.Sprint("n", 5+i) {
			t.Fatalf("resumed event %d is %s, want n%d", i, id, 5+i)
		}
	}
	quiet(t, c2.events, 200*time.Millisecond)
	// A malformed Last-Event-ID is a 400, not a stream from nowhere.
	req, _ := http.NewRequest("GET", pods[0].srv.URL+"/v1/feed/stream", nil)
	req.Header.Set("Authorization", "Bearer ok:p1")
	req.Header.Set("Last-Event-ID", "yesterday")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 400 {
		t.Fatalf("bad Last-Event-ID: %v %v", resp.Status, err)
	}
}

// TestResync: when a pod's subscription is cut (Redis kills it, a network
// blip), changes published meanwhile are caught up from the feed.
func TestResync(t *testing.T) {
	store, srv := redisStore(t)
	pods := startPods(t, store, 1, nil)
	c := openSSE(t, pods[0].srv.URL, "ok:p1", "")
	time.Sleep(50 * time.Millisecond)
	appendN(t, store, "p1", 0, 3)
	collect(t, c.events, 3)
	for round := 1; round <= 3; round++ {
		if err := srv.Client().Do(context.Background(), "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
			t.Fatal(err)
		}
		appendN(t, store, "p1", round*10, round*10+5) // likely published to nobody
		got := collect(t, c.events, 5)
		for i, e := range got {
			if id := itemID(t, e.Data); id != fmt.Sprint("n", round*10+i) {
				t.Fatalf("round %d: event %d is %s", round, i, id)
			}
		}
	}
	quiet(t, c.events, 200*time.Millisecond)
	if n := metricValue(t, pods[0].reg, "herald_gateway_resyncs_total", ""); n < 1 {
		t.Fatalf("resyncs = %v", n)
	}
}

// TestFeedAndRead: GET /v1/feed lists newest first with the unread count;
// marking an item read is idempotent, reaches the person's other streams,
// and nobody can read or mark another person's feed.
func TestFeedAndRead(t *testing.T) {
	store, _ := redisStore(t)
	pods := startPods(t, store, 2, nil)
	c := openSSE(t, pods[1].srv.URL, "ok:p1", "")
	time.Sleep(50 * time.Millisecond)
	appendN(t, store, "p1", 0, 3)
	collect(t, c.events, 3)

	get := func(token, path, method string) (int, map[string]any) {
		req, _ := http.NewRequest(method, pods[0].srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v
	}
	code, v := get("ok:p1", "/v1/feed?limit=2", "GET")
	items, _ := v["items"].([]any)
	if code != 200 || len(items) != 2 || v["unread"] != 3.0 || items[0].(map[string]any)["id"] != "n2" {
		t.Fatalf("feed = %d %v", code, v)
	}
	first := items[0].(map[string]any)
	for _, k := range []string{"id", "event_id", "event_type", "title", "body", "data", "created_at", "read_at"} {
		if _, ok := first[k]; !ok {
			t.Errorf("item has no %q: %v", k, first)
		}
	}
	for i := 0; i < 2; i++ {
		if code, v := get("ok:p1", "/v1/feed/n1/read", "POST"); code != 200 || v["unread"] != 2.0 {
			t.Fatalf("read #%d = %d %v", i, code, v)
		}
	}
	select {
	case e := <-c.events:
		var r feed.ReadJSON
		if e.Kind != "read" || json.Unmarshal(e.Data, &r) != nil || r.ID != "n1" || r.Unread != 2 {
			t.Fatalf("event = %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no read event on the other pod's stream")
	}
	if code, _ := get("ok:p2", "/v1/feed/n1/read", "POST"); code != 404 {
		t.Fatalf("another person marking p1's item: %d, want 404", code)
	}
	if code, v := get("ok:p2", "/v1/feed", "GET"); code != 200 || len(v["items"].([]any)) != 0 {
		t.Fatalf("another person's feed = %d %v", code, v)
	}
	for _, tok := range []string{"", "bad"} {
		if code, _ := get(tok, "/v1/feed", "GET"); code != 401 {
			t.Fatalf("token %q: %d, want 401", tok, code)
		}
	}
	if code, _ := get("ok:p1", "/v1/feed?limit=0", "GET"); code != 400 {
		t.Fatalf("limit=0: %d", code)
	}
}

// TestSlowClient: a client that stops reading is dropped after the write
// timeout; nothing is queued for it, and the person's other stream goes on.
func TestSlowClient(t *testing.T) {
	store, _ := redisStore(t)
	pods := startPods(t, store, 1, func(o *gateway.Options) { o.WriteTimeout = 300 * time.Millisecond })
	good := openSSE(t, pods[0].srv.URL, "ok:p1", "")
	// The slow client: a raw connection that sends the request and never reads.
	conn, err := net.Dial("tcp", strings.TrimPrefix(pods[0].srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096)
	}
	fmt.Fprintf(conn, "GET /v1/feed/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ok:p1\r\n\r\n")
	time.Sleep(100 * time.Millisecond)
	if n := pods[0].g.Connections(); n != 2 {
		t.Fatalf("connections = %d, want 2", n)
	}
	big := strings.Repeat("x", 8000)
	// Append until the slow client is dropped: the kernel's socket buffers
	// take a few megabytes before a write blocks.
	n := 0
	deadline := time.Now().Add(30 * time.Second)
	for pods[0].g.Connections() != 1 && time.Now().Before(deadline) {
		for i := 0; i < 50; i++ {
			if _, err := store.Append(context.Background(), "p1", feed.Item{ID: fmt.Sprint("n", n), Body: big}, time.Now()); err != nil {
				t.Fatal(err)
			}
			n++
		}
		time.Sleep(10 * time.Millisecond)
	}
	if c := pods[0].g.Connections(); c != 1 {
		t.Fatalf("connections = %d after %d items, want the slow one dropped", c, n)
	}
	// The reading client got everything meanwhile.
	collect(t, good.events, n)
	if n := metricValue(t, pods[0].reg, "herald_gateway_disconnects_total", "slow"); n != 1 {
		t.Fatalf("slow disconnects = %v", n)
	}
}

// TestPerPersonLimit: past MaxPerPerson, the person's oldest stream closes.
func TestPerPersonLimit(t *testing.T) {
	store, _ := redisStore(t)
	pods := startPods(t, store, 1, func(o *gateway.Options) { o.MaxPerPerson = 2; o.MaxConnections = 3 })
	first := openSSE(t, pods[0].srv.URL, "ok:p1", "")
	time.Sleep(50 * time.Millisecond)
	openSSE(t, pods[0].srv.URL, "ok:p1", "")
	openSSE(t, pods[0].srv.URL, "ok:p1", "")
	select {
	case _, ok := <-first.events:
		for ok {
			_, ok = <-first.events
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the oldest stream was not closed")
	}
	openSSE(t, pods[0].srv.URL, "ok:p2", "")
	// The pod is full now: a fourth stream is refused with 503.
	req, _ := http.NewRequest("GET", pods[0].srv.URL+"/v1/feed/stream", nil)
	req.Header.Set("Authorization", "Bearer ok:p3")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over capacity: %v %v", resp.Status, err)
	}
}

// metricValue reads one series of a registered metric, by its one label
// value ("" for a metric without labels).
func metricValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
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
			if label == "" || (len(m.GetLabel()) > 0 && m.GetLabel()[0].GetValue() == label) {
				return m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no metric %s{%s}", name, label)
	return 0
}

// TestLive: a live value reaches the person's open streams on every pod as
// it changes, a stream opened later starts with the current values, and
// GET /v1/live lists them.
func TestLive(t *testing.T) {
	store, _ := redisStore(t)
	pods := startPods(t, store, 2, nil)
	ctx := context.Background()
	early := openSSE(t, pods[0].srv.URL, "ok:ins_1", "")
	ws := openWS(t, pods[1].srv.URL, "ok:ins_1")
	time.Sleep(100 * time.Millisecond)
	for v := int64(1); v <= 3; v++ {
		if _, err := store.SetLive(ctx, "ins_1", "cls_1", v, []byte(fmt.Sprintf(`{"type":"attendance","confirmed":%d}`, v))); err != nil {
			t.Fatal(err)
		}
	}
	next := func(ch <-chan event) event {
		for {
			select {
			case e := <-ch:
				if e.Kind != "notification" || strings.Contains(string(e.Data), `"type":"attendance"`) {
					return e
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no live event")
			}
		}
	}
	for v := 1; v <= 3; v++ {
		want := fmt.Sprintf(`{"type":"attendance","confirmed":%d}`, v)
		if e := next(early.events); e.Kind != "live" || string(e.Data) != want {
			t.Fatalf("sse: %+v, want %s", e, want)
		}
		if e := next(ws); string(e.Data) != want {
			t.Fatalf("ws: %s, want %s", e.Data, want)
		}
	}
	late := openSSE(t, pods[1].srv.URL, "ok:ins_1", "")
	if e := next(late.events); e.Kind != "live" || string(e.Data) != `{"type":"attendance","confirmed":3}` {
		t.Fatalf("late stream starts with %+v", e)
	}
	req, _ := http.NewRequest("GET", pods[0].srv.URL+"/v1/live", nil)
	req.Header.Set("Authorization", "Bearer ok:ins_1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Live []map[string]any }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || len(v.Live) != 1 || v.Live[0]["confirmed"] != 3.0 {
		t.Fatalf("GET /v1/live = %+v, %v", v, err)
	}
}

// TestStreamEnds: a stream ends when its token expires, and a replaced
// one is told so before it closes, so that a browser's EventSource does
// not reconnect and push out the person's next tab, round and round.
func TestStreamEnds(t *testing.T) {
	store, _ := redisStore(t)
	pods := startPods(t, store, 1, func(o *gateway.Options) { o.MaxPerPerson = 1 })
	closedWith := func(c *sseClient) string {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case e, ok := <-c.events:
				if !ok {
					t.Fatal("the stream ended without saying why")
				}
				if e.Kind == "closed" {
					var v struct{ Reason string }
					_ = json.Unmarshal(e.Data, &v)
					if _, more := <-c.events; more {
						t.Fatal("the stream went on after closed")
					}
					return v.Reason
				}
			case <-timeout:
				t.Fatal("the stream did not end")
			}
		}
	}
	exp := openSSE(t, pods[0].srv.URL, fmt.Sprintf("ok:p1@%d", time.Now().Add(1500*time.Millisecond).Unix()), "")
	if r := closedWith(exp); r != "expired" {
		t.Fatalf("expired token: closed with %q", r)
	}
	first := openSSE(t, pods[0].srv.URL, "ok:p2", "")
	time.Sleep(100 * time.Millisecond)
	openSSE(t, pods[0].srv.URL, "ok:p2", "")
	if r := closedWith(first); r != "replaced" {
		t.Fatalf("replaced stream: closed with %q", r)
	}
	if n := metricValue(t, pods[0].reg, "herald_gateway_disconnects_total", "expired"); n != 1 {
		t.Fatalf("expired disconnects = %v", n)
	}
}

// What no route serves is answered in the JSON every other answer uses:
// a 405 (with its Allow header; a CORS preflight from an origin not
// allowed is one) and a 404. ServeMux's plain "Method Not Allowed" was
// the one plain-text answer (an outside tester's find).
func TestUnroutedAnswersAreJSON(t *testing.T) {
	store, _ := redisStore(t)
	p := startPods(t, store, 1, nil)[0]
	for _, tc := range []struct {
		method, path string
		code         int
		allow, want  string
	}{
		{"DELETE", "/v1/feed", http.StatusMethodNotAllowed, "GET, HEAD", "method not allowed"},
		{"OPTIONS", "/v1/feed/stream", http.StatusMethodNotAllowed, "GET, HEAD", "method not allowed"},
		{"GET", "/v2/nothing", http.StatusNotFound, "", "not found"},
	} {
		req, _ := http.NewRequest(tc.method, p.srv.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Error string }
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || err != nil || body.Error != tc.want || resp.Header.Get("Allow") != tc.allow ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("%s %s: %d %q (%v), Allow %q, %s", tc.method, tc.path, resp.StatusCode, body.Error, err, resp.Header.Get("Allow"), resp.Header.Get("Content-Type"))
		}
	}
	// ServeMux's redirect to a cleaned path keeps its Location (the JSON
	// answers above had dropped it: a review's find).
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(p.srv.URL + "/v1//nothing")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 3 || resp.Header.Get("Location") != "/v1/nothing" {
		t.Errorf("GET /v1//nothing: %d, Location %q; want a redirect to /v1/nothing", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// A refused request leaves a log line saying why, where and from whom,
// never the token; a flood of them is sampled. Before, a 401 or a 503 at
// capacity was only counted (an outside tester looked for it in the log).
func TestRefusalsAreLogged(t *testing.T) {
	store, _ := redisStore(t)
	log, logs := logtest.Observed()
	p := startPods(t, store, 1, func(o *gateway.Options) { o.Logger = log })[0]
	for range 50 {
		req, _ := http.NewRequest("GET", p.srv.URL+"/v1/feed", nil)
		req.Header.Set("Authorization", "Bearer secret-token-value")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	lines := logs.FilterMessage("request refused").All()
	if len(lines) == 0 || len(lines) > 10 {
		t.Fatalf("%d lines for 50 refusals, want a few (sampled)", len(lines))
	}
	f := lines[0].ContextMap()
	if f["reason"] != "unauthorized" || f["path"] != "/v1/feed" || !strings.Contains(fmt.Sprint(f["why"]), "bad token") || f["remote"] == "" {
		t.Errorf("fields %v", f)
	}
	for _, l := range logs.All() {
		if strings.Contains(fmt.Sprint(l.ContextMap()), "secret-token-value") {
			t.Fatalf("the token is logged: %v", l.ContextMap())
		}
	}
}
