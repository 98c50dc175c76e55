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
// ("2006-01-02T15:04:05.000Z0700"), byte for byte, but formats each
// millisecond once. A channel worker writes a line per notification, and
// formatting the time was 1.2% of the pipeline scenario's CPU (issue 14's
// twenty-fourth profile); at thousands of lines a second most lines share
// their millisecond with the line before. The last millisecond's text is
// kept with its location; a line of another millisecond or location
// formats its own and keeps that.
func lineTime(t time.Time, enc zapcore.PrimitiveArrayEncoder) {
	ms, loc := t.UnixMilli(), t.Location()
	if s := lastStamp.Load(); s != nil && s.ms == ms && s.loc == loc {
		enc.AppendString(s.text)
		return
	}
	s := &stamp{ms: ms, loc: loc, text: t.Format("2006-01-02T15:04:05.000Z0700")}
	lastStamp.Store(s)
	enc.AppendString(s.text)
}

// stamp is one millisecond's "ts" text in one location.
type stamp struct {
	ms   int64
	loc  *time.Location
	text string
}

var lastStamp atomic.Pointer[stamp]

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
