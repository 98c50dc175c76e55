package feed_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gymhq/herald/feed"
	"github.com/gymhq/herald/internal/redistest"
)

// stores runs f against every Store: memory, a real redis-server, and a
// three-master Redis Cluster.
func stores(t *testing.T, limits feed.Limits, f func(t *testing.T, s feed.Store)) {
	t.Run("memory", func(t *testing.T) { f(t, feed.NewMemory(limits)) })
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		f(t, feed.NewRedis(srv.Client(), limits))
	})
}

var t0 = time.Date(2026, 12, 4, 7, 0, 0, 0, time.UTC)

func item(id string) feed.Item {
	return feed.Item{ID: id, EventID: "evt_" + id, EventType: "gym.booking.confirmed", Title: "Booked", Body: "Spin 45 " + id, Data: map[string]string{"class_id": "cls_1"}}
}

func ids(items []feed.Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.ID
	}
	return out
}

func TestOncePerNotification(t *testing.T) {
	stores(t, feed.Limits{}, func(t *testing.T, s feed.Store) {
		ctx := context.Background()
		a, err := s.Append(ctx, "mem_emma", item("n1"), t0)
		if err != nil || !a.Added || a.Pos == "" {
			t.Fatalf("first append = %+v, %v", a, err)
		}
		for i := 0; i < 3; i++ { // replays, later, with other content
			again := item("n1")
			again.Title = "changed"
			b, err := s.Append(ctx, "mem_emma", again, t0.Add(time.Duration(i)*time.Hour))
			if err != nil || b.Added || b.Pos != a.Pos {
				t.Fatalf("replay %d = %+v, %v; want not added at %s", i, b, err, a.Pos)
			}
		}
		items, unread, err := s.List(ctx, "mem_emma", 10)
		if err != nil || len(items) != 1 || unread != 1 || items[0].Title != "Booked" {
			t.Fatalf("List = %+v, %d, %v", items, unread, err)
		}
		if !items[0].CreatedAt.Equal(t0) || items[0].ReadAt != nil || items[0].Data["class_id"] != "cls_1" {
			t.Fatalf("item = %+v", items[0])
		}
		// Another person's feed is another feed.
		if b, _ := s.Append(ctx, "mem_jo", item("n1"), t0); !b.Added {
			t.Fatal("the same notification id in another person's feed was refused")
		}
	})
}

func TestPositionsAndAfter(t *testing.T) {
	stores(t, feed.Limits{}, func(t *testing.T, s feed.Store) {
		ctx := context.Background()
		var pos []string
		// Same millisecond, then a clock that goes back: positions still rise.
		for i, at := range []time.Time{t0, t0, t0.Add(-time.Minute), t0.Add(time.Second)} {
			a, err := s.Append(ctx, "p1", item(fmt.Sprint("n", i)), at)
			if err != nil {
				t.Fatal(err)
			}
			pos = append(pos, a.Pos)
		}
		for i := 1; i < len(pos); i++ {
			am, as, _ := feed.ParsePos(pos[i-1])
			bm, bs, _ := feed.ParsePos(pos[i])
			if bm < am || (bm == am && bs <= as) {
				t.Fatalf("positions %v do not increase", pos)
			}
		}
		got, err := s.After(ctx, "p1", pos[1], 10)
		if err != nil || fmt.Sprint(ids(got)) != "[n2 n3]" || got[0].Pos != pos[2] {
			t.Fatalf("After(%s) = %v, %v", pos[1], ids(got), err)
		}
		if got, _ := s.After(ctx, "p1", "", 2); fmt.Sprint(ids(got)) != "[n0 n1]" {
			t.Fatalf(`After("", 2) = %v`, ids(got))
		}
		if got, _ := s.After(ctx, "p1", pos[3], 10); len(got) != 0 {
			t.Fatalf("After(last) = %v", ids(got))
		}
		if last, _ := s.Last(ctx, "p1"); last != pos[3] {
			t.Fatalf("Last = %q, want %q", last, pos[3])
		}
		if last, _ := s.Last(ctx, "nobody"); last != "" {
			t.Fatalf("Last of an empty feed = %q", last)
		}
		if _, err := s.After(ctx, "p1", "12; DROP", 10); !errors.Is(err, feed.ErrInvalid) {
			t.Fatalf("After(bad position) = %v", err)
		}
		items, _, _ := s.List(ctx, "p1", 3)
		if fmt.Sprint(ids(items)) != "[n3 n2 n1]" {
			t.Fatalf("List = %v, want newest first", ids(items))
		}
	})
}

func TestRead(t *testing.T) {
	stores(t, feed.Limits{}, func(t *testing.T, s feed.Store) {
		ctx := context.Background()
		for i := 0; i < 3; i++ {
			if _, err := s.Append(ctx, "p1", item(fmt.Sprint("n", i)), t0); err != nil {
				t.Fatal(err)
			}
		}
		at := t0.Add(time.Minute)
		for i := 0; i < 2; i++ { // idempotent
			u, found, err := s.Read(ctx, "p1", "n1", at.Add(time.Duration(i)*time.Hour))
			if err != nil || !found || u != 2 {
				t.Fatalf("Read #%d = %d, %v, %v; want 2 unread", i, u, found, err)
			}
		}
		if u, found, err := s.Read(ctx, "p1", "n9", at); err != nil || found || u != 2 {
			t.Fatalf("Read(unknown) = %d, %v, %v", u, found, err)
		}
		items, unread, _ := s.List(ctx, "p1", 10)
		if unread != 2 || items[1].ReadAt == nil || !items[1].ReadAt.Equal(at) || items[0].ReadAt != nil {
			t.Fatalf("List after Read = %+v, unread %d", items, unread)
		}
	})
}

func TestBounds(t *testing.T) {
	stores(t, feed.Limits{MaxItems: 3, MaxAge: 24 * time.Hour}, func(t *testing.T, s feed.Store) {
		ctx := context.Background()
		for i := 0; i < 5; i++ {
			if _, err := s.Append(ctx, "p1", item(fmt.Sprint("n", i)), t0.Add(time.Duration(i)*time.Second)); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := s.Read(ctx, "p1", "n4", t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		items, unread, _ := s.List(ctx, "p1", 10)
		if fmt.Sprint(ids(items)) != "[n4 n3 n2]" || unread != 2 {
			t.Fatalf("List = %v unread %d; want the newest 3, 2 unread", ids(items), unread)
		}
		// An id trimmed by count is still known: its replay adds nothing.
		if a, _ := s.Append(ctx, "p1", item("n0"), t0.Add(time.Minute)); a.Added {
			t.Fatal("a replay of a trimmed notification was added again")
		}
		// An item older than MaxAge is refused.
		old := item("old")
		old.CreatedAt = t0.Add(-25 * time.Hour)
		if a, _ := s.Append(ctx, "p1", old, t0.Add(time.Minute)); a.Added {
			t.Fatal("an item older than MaxAge was added")
		}
		// A day later, the old items age out with the next append.
		later := t0.Add(24*time.Hour + 3*time.Second + 500*time.Millisecond)
		if _, err := s.Append(ctx, "p1", item("n5"), later); err != nil {
			t.Fatal(err)
		}
		items, unread, _ = s.List(ctx, "p1", 10)
		if fmt.Sprint(ids(items)) != "[n5 n4]" || unread != 1 {
			t.Fatalf("List after a day = %v unread %d; want [n5 n4] and 1", ids(items), unread)
		}
	})
}

func TestLimits(t *testing.T) {
	stores(t, feed.Limits{}, func(t *testing.T, s feed.Store) {
		ctx := context.Background()
		big := item("big")
		big.Body = string(make([]byte, feed.MaxItemBytes))
		for name, tc := range map[string]struct {
			person string
			it     feed.Item
		}{
			"no id":       {"p1", feed.Item{}},
			"bad person":  {"p 1\nx", item("n")},
			"empty":       {"", item("n")},
			"too large":   {"p1", big},
			"long person": {string(make([]byte, 200)), item("n")},
		} {
			if _, err := s.Append(ctx, tc.person, tc.it, t0); !errors.Is(err, feed.ErrInvalid) {
				t.Errorf("%s: Append = %v, want ErrInvalid", name, err)
			}
		}
	})
}

func TestChanges(t *testing.T) {
	stores(t, feed.Limits{}, func(t *testing.T, s feed.Store) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		got := make(chan feed.Change, 16)
		go s.Subscribe(ctx, func(c feed.Change) { got <- c }) //nolint:errcheck
		next := func() feed.Change {
			select {
			case c := <-got:
				return c
			case <-time.After(5 * time.Second):
				t.Fatal("no change")
			}
			return feed.Change{}
		}
		// The subscription may take a moment to start: append until heard.
		var first feed.Change
		for i := 0; ; i++ {
			if _, err := s.Append(ctx, "p1", item(fmt.Sprint("w", i)), t0); err != nil {
				t.Fatal(err)
			}
			select {
			case first = <-got:
			case <-time.After(50 * time.Millisecond):
				continue
			}
			break
		}
		for len(got) > 0 {
			first = <-got
		}
		a, _ := s.Append(ctx, "p1", item("n1"), t0)
		_, _ = s.Append(ctx, "p1", item("n1"), t0) // a replay: no change
		c := next()
		if c.Kind != feed.KindItem || c.Person != "p1" || c.Pos != a.Pos || c.Prev != first.Pos {
			t.Fatalf("change = %+v; want item at %s after %s", c, a.Pos, first.Pos)
		}
		var it feed.Item
		if err := json.Unmarshal(c.Data, &it); err != nil || it.ID != "n1" || it.ReadAt != nil {
			t.Fatalf("change data %s: %v", c.Data, err)
		}
		_, _, _ = s.Read(ctx, "p1", "n1", t0)
		_, _, _ = s.Read(ctx, "p1", "n1", t0) // again: no change
		c = next()
		var r feed.ReadJSON
		if err := json.Unmarshal(c.Data, &r); c.Kind != feed.KindRead || err != nil || r.ID != "n1" || !r.ReadAt.Equal(t0) {
			t.Fatalf("read change = %+v (%s), %v", c, c.Data, err)
		}
		select {
		case c := <-got:
			t.Fatalf("a replay or a second read published %+v", c)
		case <-time.After(100 * time.Millisecond):
		}
	})
}

// TestConcurrentReplays: eight writers append the same 100 notifications;
// the feed holds each once and announced each once.
func TestConcurrentReplays(t *testing.T) {
	stores(t, feed.Limits{}, func(t *testing.T, s feed.Store) {
		ctx := context.Background()
		var wg sync.WaitGroup
		added := make(chan string, 1000)
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 100; i++ {
					id := fmt.Sprint("n", (i*7+w*13)%100)
					a, err := s.Append(ctx, "p1", item(id), time.Now())
					if err != nil {
						t.Error(err)
						return
					}
					if a.Added {
						added <- id
					}
				}
			}()
		}
		wg.Wait()
		close(added)
		seen := map[string]bool{}
		for id := range added {
			if seen[id] {
				t.Fatalf("%s added twice", id)
			}
			seen[id] = true
		}
		items, unread, _ := s.List(ctx, "p1", 200)
		if len(seen) != 100 || len(items) != 100 || unread != 100 {
			t.Fatalf("added %d, feed holds %d, unread %d; want 100", len(seen), len(items), unread)
		}
	})
}

func TestCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0)
	s := feed.NewRedis(c.Client(), feed.Limits{})
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		p := fmt.Sprint("mem_", i)
		if _, err := s.Append(ctx, p, item("n1"), t0); err != nil {
			t.Fatal(err)
		}
		if _, found, err := s.Read(ctx, p, "n1", t0); err != nil || !found {
			t.Fatalf("Read: %v, %v", found, err)
		}
		if items, unread, err := s.List(ctx, p, 5); err != nil || len(items) != 1 || unread != 0 {
			t.Fatalf("List(%s) = %v, %d, %v", p, ids(items), unread, err)
		}
	}
}

// TestLive: a live value is kept per key, only a newer version replaces
// it, and each replacement is announced once.
func TestLive(t *testing.T) {
	stores(t, feed.Limits{}, func(t *testing.T, s feed.Store) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		got := make(chan feed.Change, 16)
		go s.Subscribe(ctx, func(c feed.Change) { got <- c }) //nolint:errcheck
		time.Sleep(100 * time.Millisecond)
		steps := []struct {
			version int64
			data    string
			want    bool
		}{{2, `{"confirmed":5}`, true}, {2, `{"confirmed":9}`, false}, {1, `{"confirmed":4}`, false}, {3, `{"confirmed":6}`, true}}
		for _, st := range steps {
			ok, err := s.SetLive(ctx, "ins_1", "cls_1", st.version, []byte(st.data))
			if err != nil || ok != st.want {
				t.Fatalf("SetLive(v%d) = %v, %v; want %v", st.version, ok, err, st.want)
			}
		}
		if _, err := s.SetLive(ctx, "ins_1", "cls_2", 1, []byte(`{"confirmed":1}`)); err != nil {
			t.Fatal(err)
		}
		live, err := s.Live(ctx, "ins_1")
		if err != nil || string(live["cls_1"]) != `{"confirmed":6}` || string(live["cls_2"]) != `{"confirmed":1}` || len(live) != 2 {
			t.Fatalf("Live = %q, %v", live, err)
		}
		for _, want := range []string{`{"confirmed":5}`, `{"confirmed":6}`, `{"confirmed":1}`} {
			select {
			case c := <-got:
				if c.Kind != feed.KindLive || c.Person != "ins_1" || string(c.Data) != want {
					t.Fatalf("change = %+v %s, want %s", c, c.Data, want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no live change")
			}
		}
		if _, err := s.SetLive(ctx, "ins_1", "bad\nkey", 1, nil); !errors.Is(err, feed.ErrInvalid) {
			t.Fatalf("bad key: %v", err)
		}
	})
}
