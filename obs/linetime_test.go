package obs

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
)

// encodeTS is the line a time encoder gives an entry at ts, through zap's
// JSON encoder as the process logger builds it.
func encodeTS(tb testing.TB, f zapcore.TimeEncoder, ts time.Time) string {
	tb.Helper()
	cfg := zapcore.EncoderConfig{TimeKey: "ts", EncodeTime: f}
	buf, err := zapcore.NewJSONEncoder(cfg).EncodeEntry(zapcore.Entry{Time: ts}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer buf.Free()
	return buf.String()
}

// TestLineTimeIsZapsISO8601: a line's "ts" is what
// zapcore.ISO8601TimeEncoder writes, for times sharing a millisecond (the
// kept text), across millisecond, second and offset changes (the end of
// British summer time, when a wall-clock hour repeats), in locations with
// odd offsets, at the edges of the years a layout can hold, in any order.
func TestLineTimeIsZapsISO8601(t *testing.T) {
	var locs []*time.Location
	for _, name := range []string{"UTC", "Local", "Asia/Kathmandu", "America/St_Johns", "Europe/London", "Australia/Lord_Howe"} {
		loc, err := time.LoadLocation(name)
		if err != nil {
			t.Fatal(err)
		}
		locs = append(locs, loc)
	}
	locs = append(locs, time.FixedZone("", -(3*3600+30*60)), time.FixedZone("X", 0))
	bst := time.Date(2026, 10, 25, 0, 59, 59, 999_400_000, time.UTC)
	var times []time.Time
	for i := range 2000 {
		times = append(times, bst.Add(time.Duration(i)*300*time.Microsecond))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		times = append(times, time.Unix(rng.Int64N(1<<36)-1<<35, rng.Int64N(1e9)))
	}
	times = append(times, time.Time{}, time.Date(-1, 1, 1, 0, 0, 0, 5e5, time.UTC), time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Now(), time.Now().Round(0))
	for _, ts := range times {
		for _, loc := range locs {
			in := ts.In(loc)
			if got, want := encodeTS(t, lineTime, in), encodeTS(t, zapcore.ISO8601TimeEncoder, in); got != want {
				t.Fatalf("%v in %s: got %s, want %s", ts, loc, got, want)
			}
		}
	}
}

// TestLineTimeConcurrent: goroutines writing lines of different
// milliseconds and locations at once each get their own time's text.
func TestLineTimeConcurrent(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				ts := base.Add(time.Duration(i%7) * 700 * time.Microsecond)
				if g%2 == 1 {
					ts = ts.In(ny)
				}
				if got, want := encodeTS(t, lineTime, ts), encodeTS(t, zapcore.ISO8601TimeEncoder, ts); got != want {
					t.Errorf("goroutine %d: got %s, want %s", g, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkLineTime is an entry's encoding with only its "ts": zap's
// ISO8601TimeEncoder against lineTime, in the same run, at three paces of
// lines: a busy worker's (20 to a millisecond), 2 to a millisecond, and a
// quiet process's (each line a millisecond of its own).
func BenchmarkLineTime(b *testing.B) {
	for _, pace := range []int{20, 2, 1} {
		for _, bc := range []struct {
			name string
			f    zapcore.TimeEncoder
		}{{"zap-ISO8601", zapcore.ISO8601TimeEncoder}, {"lineTime", lineTime}} {
			b.Run(fmt.Sprintf("lines-per-ms=%d/%s", pace, bc.name), func(b *testing.B) {
				enc := zapcore.NewJSONEncoder(zapcore.EncoderConfig{TimeKey: "ts", EncodeTime: bc.f})
				ts := time.Now()
				i := 0
				b.ReportAllocs()
				for b.Loop() {
					if i++; i%pace == 0 {
						ts = ts.Add(time.Millisecond)
					}
					buf, err := enc.EncodeEntry(zapcore.Entry{Time: ts}, nil)
					if err != nil {
						b.Fatal(err)
					}
					buf.Free()
				}
			})
		}
	}
}
