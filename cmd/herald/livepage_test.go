package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/queue"
)

// TestLivePagesInABrowser drives herald dev's member app and front-desk
// dashboard in headless Chromium, as a person would open them: bookings
// produced to herald dev's Kafka appear on the member's page and tick the
// dashboard's figures, and the produce-to-DOM latency is measured (p50 and
// p99 logged, not asserted: wall-clock speed is the benchmarks' business).
func TestLivePagesInABrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	browser := chromiumBinary(t)
	kafkaAddr, httpAddr, stderr := startDevBinary(t)
	base := "http://" + httpAddr

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	member, cancelMember := chromedp.NewContext(actx)
	defer cancelMember()
	ctx, cancel := context.WithTimeout(member, 2*time.Minute)
	defer cancel()

	const person = "mem_browser"
	poll := func(ctx context.Context, what, expr string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(60*time.Second))); err != nil {
			t.Fatalf("%s: %v\n%s", what, err, stderr.String())
		}
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/app/?person="+person)); err != nil {
		t.Fatalf("member page: %v", err)
	}
	poll(ctx, "member page live", `document.getElementById('status').textContent.startsWith('live')`)
	desk, cancelDesk := chromedp.NewContext(member) // a second tab of the browser the first started
	defer cancelDesk()
	dctx, dcancel := context.WithTimeout(desk, 2*time.Minute)
	defer dcancel()
	if err := chromedp.Do(dctx, chromedp.Navigate(base+"/dashboard/?person=desk_shoreditch")); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	poll(dctx, "dashboard live", `document.getElementById('status').textContent == 'live'`)

	prod := kafkarun.NewProducer(kafkarun.ProducerConfig{Brokers: []string{kafkaAddr}})
	defer prod.Close()
	const n = 40
	produced := map[string]int64{}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("evt_browser_%03d", i)
		v := liveBooking("gym.booking.confirmed", id, "cls_browser", fmt.Sprint("bkg_browser_", i))
		v = []byte(strings.Replace(string(v), `"mem_bkg_browser_`+fmt.Sprint(i)+`"`, `"`+person+`"`, 1))
		produced[id] = time.Now().UnixMilli()
		if err := prod.Publish(ctx, queue.Message{Topic: "gym.bookings.v1", Key: []byte("cls_browser"), Value: v}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // a booking every 50 ms, not a batch
	}

	poll(ctx, "member page shows every booking", fmt.Sprintf(`document.querySelectorAll('#feed li').length >= %d`, n))
	shown, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]int64](`window.heraldShownAt`))
	if err != nil {
		t.Fatal(err)
	}
	if count, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#feed li').length`)); err != nil || count != n {
		t.Fatalf("member page shows %d items, want %d (each once): %v", count, n, err)
	}
	var lat []int64
	for id, at := range produced {
		s, ok := shown[id]
		if !ok {
			t.Fatalf("%s never shown", id)
		}
		lat = append(lat, s-at)
	}
	slices.Sort(lat)

	// The dashboard ticked to every booking (past the capacity of 20: the
	// simulated booking service overbooks) and shows the busy warning, once.
	type tick struct {
		ClassID   string `json:"class_id"`
		Confirmed int    `json:"confirmed"`
		At        int64  `json:"at"`
	}
	poll(dctx, "dashboard ticks to every booking", fmt.Sprintf(`(document.querySelector('tr[data-class="cls_browser"] .confirmed')||{}).textContent == '%d'`, n))
	poll(dctx, "dashboard warns of the busy class", `document.querySelector('#warnings li[data-event-type="gym.class.busy"]') !== null`)
	ticks, err := chromedp.Run(dctx, chromedp.Evaluate[[]tick](`window.heraldTickAt`))
	if err != nil {
		t.Fatal(err)
	}
	if warnings, _ := chromedp.Run(dctx, chromedp.Evaluate[int](`document.querySelectorAll('#warnings li[data-event-type="gym.class.busy"]').length`)); warnings != 1 {
		t.Errorf("dashboard shows %d busy warnings, want 1", warnings)
	}
	var dlat []int64
	for _, tk := range ticks {
		if tk.ClassID == "cls_browser" && tk.Confirmed >= 1 && tk.Confirmed <= n {
			if at, ok := produced[fmt.Sprintf("evt_browser_%03d", tk.Confirmed-1)]; ok {
				dlat = append(dlat, tk.At-at)
			}
		}
	}
	slices.Sort(dlat)
	pct := func(l []int64, p float64) int64 {
		if len(l) == 0 {
			return -1
		}
		return l[min(len(l)-1, int(p*float64(len(l))))]
	}
	t.Logf("produce-to-DOM, %d bookings 50 ms apart: member page p50 %d ms, p99 %d ms; dashboard tick (%d ticks) p50 %d ms, p99 %d ms",
		n, pct(lat, 0.5), pct(lat, 0.99), len(dlat), pct(dlat, 0.5), pct(dlat, 0.99))
	if out := os.Getenv("HERALD_LATENCY_OUT"); out != "" {
		_ = os.WriteFile(out, []byte(fmt.Sprintf("member p50=%d p99=%d dashboard p50=%d p99=%d\n", pct(lat, 0.5), pct(lat, 0.99), pct(dlat, 0.5), pct(dlat, 0.99))), 0o644)
	}
}
