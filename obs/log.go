// Package obs is herald's observability: the structured logger, masking of
// personal data, and the Prometheus metrics every role exports.
//
// Rules it exists to enforce: no message bodies, secrets, full email
// addresses or phone numbers in logs; one log line per final outcome; metric
// label values come from closed sets only.
package obs

import (
	"fmt"
	"os"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// NewLogger builds the process logger. format is "json" or "console";
// level is debug, info, warn or error. Sampling is off: outcome lines must
// never be sampled away.
func NewLogger(level, format string) (*zap.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.TimeKey = "ts"
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
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
	core := zapcore.NewCore(enc, zapcore.Lock(os.Stderr), lvl)
	return zap.New(core, zap.AddCaller()), nil
}

// MaskEmail keeps the first character of the local part and the domain:
// "ana.diaz@example.com" → "a***@example.com". Enough to tell addresses
// apart in an incident without exposing them.
func MaskEmail(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 {
		return "***"
	}
	return addr[:1] + "***" + addr[at:]
}

// MaskPhone keeps the country-code prefix and the last two digits:
// "+447700900123" → "+44*******23".
func MaskPhone(p string) string {
	if len(p) < 6 {
		return "***"
	}
	return p[:3] + strings.Repeat("*", len(p)-5) + p[len(p)-2:]
}

// MaskToken keeps the first six characters of a push token.
func MaskToken(t string) string {
	if len(t) <= 6 {
		return "***"
	}
	return t[:6] + "***"
}

// MaskAddress masks an address according to its channel.
func MaskAddress(channel, to string) string {
	switch channel {
	case "email":
		return MaskEmail(to)
	case "sms":
		return MaskPhone(to)
	default:
		return MaskToken(to)
	}
}
