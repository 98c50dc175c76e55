// Package obs is herald's observability: the structured logger, masking of
// personal data, and the Prometheus metrics every role exports.
//
// Rules it exists to enforce: no message bodies, secrets, full email
// addresses or phone numbers in logs; one log line per final outcome; metric
// label values come from closed sets only.
package obs

import (
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/gymhq/herald/notification"
	"go.uber.org/zap/zapcore"
)

// NewLogger builds the process logger, writing to stderr. format is "json"
// or "console"; level is debug, info, warn or error. Sampling is off:
// outcome lines must never be sampled away. Lines carry their caller;
// outcome lines are written through OutcomeLogger, which leaves it out.
func NewLogger(level, format string) (*zap.Logger, error) {
	return NewLoggerTo(level, format, os.Stderr)
}

// NewLoggerTo is NewLogger writing to w: the bench logs through it to
// io.Discard, so that it encodes each line as a deployment does.
func NewLoggerTo(level, format string, w io.Writer) (*zap.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.TimeKey = "ts"
	encCfg.EncodeTime = lineTime
	var enc zapcore.Encoder
	switch format {
	case "json", "":
		enc = zapcore.NewJSONEncoder(encCfg)
	case "console":
		encCfg.EncodeLevel = zapcore.CapitalColorLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	default:
		return nil, fmt.Errorf("log format %q is not json or console", format)
	}
	core := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), lvl)
	return zap.New(core, zap.AddCaller()), nil
}

// lineTime writes a line's "ts" as zapcore.ISO8601TimeEncoder does
// ("2006-01-02T15:04:05.000Z0700"), byte for byte, formatting a busy
// millisecond once. A channel worker writes a line per notification, and
// formatting the time was 1.2% of the pipeline scenario's CPU (issue 14's
// twenty-fourth profile): under load, many lines share a millisecond.
//
// The first line of a millisecond is written by zap's encoder, with no
// allocation, and only marks the millisecond (lastMilli). A second line in
// the same millisecond formats the text once (a string and a stamp, two
// allocations) and keeps it with its location for the lines after it. A
// quiet process, whose lines each have a millisecond of their own, pays no
// more than zap's encoder: the twentieth pass measured a cache that
// allocated for every new millisecond at 1,140–1,300 ns a line against
// zap's 430–760 there, and dropped it for that.
func lineTime(t time.Time, enc zapcore.PrimitiveArrayEncoder) {
	ms, loc := t.UnixMilli(), t.Location()
	if s := lastStamp.Load(); s != nil && s.ms == ms && s.loc == loc {
		enc.AppendString(s.text)
		return
	}
	if lastMilli.Swap(ms) != ms {
		zapcore.ISO8601TimeEncoder(t, enc)
		return
	}
	s := &stamp{ms: ms, loc: loc, text: t.Format(isoLayout)}
	lastStamp.Store(s)
	enc.AppendString(s.text)
}

// isoLayout is zapcore.ISO8601TimeEncoder's layout.
const isoLayout = "2006-01-02T15:04:05.000Z0700"

// stamp is one millisecond's "ts" text in one location.
type stamp struct {
	ms   int64
	loc  *time.Location
	text string
}

var (
	lastStamp atomic.Pointer[stamp]
	lastMilli atomic.Int64 // the millisecond of the last line not written from a stamp
)

// OutcomeLogger is l for outcome lines, the ones with an "outcome" field
// (docs/contracts.md §8): without the caller. A channel worker writes one
// per notification, where the caller is always the same line of its code
// and finding it cost 1–2 µs and two allocations (BenchmarkLogLine).
func OutcomeLogger(l *zap.Logger) *zap.Logger { return l.WithOptions(zap.WithCaller(false)) }

// FloodLogger is l for lines that outsiders can cause in any number (the
// gateway's refused requests, the dashboards' unreadable records), never
// for outcome lines: the first 3 of a second, then every 100th, so that a
// flood is seen without drowning the log.
func FloodLogger(l *zap.Logger) *zap.Logger {
	return l.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return zapcore.NewSamplerWithOptions(c, time.Second, 3, 100)
	}))
}

// MaskAddress masks an address by its channel's rule (notification.Spec;
// the shipped rules are address.MaskEmail, MaskPhone and MaskToken). An
// address of an unknown channel is not shown at all.
func MaskAddress(channel, to string) string {
	if s := notification.SpecOf(notification.Channel(channel)); s != nil {
		return s.Mask(to)
	}
	return "***"
}
