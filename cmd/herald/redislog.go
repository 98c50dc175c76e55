package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// routeRedisLogs sends go-redis's own messages (a pool that cannot dial
// during a Redis outage, say) into herald's structured logs instead of raw
// lines on stderr, which would break the JSON stream on-call reads. They
// repeat once per dial attempt, so they are sampled: the first 3 of each
// message per 10 s. They name the server's address, never a password (the
// client is built from a parsed URL). It returns the logger installed.
func routeRedisLogs(log *zap.Logger) redisLogger {
	sampled := log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return zapcore.NewSamplerWithOptions(c, 10*time.Second, 3, 0)
	}))
	l := redisLogger{log: sampled.With(zap.String("component", "go-redis"))}
	redis.SetLogger(l)
	return l
}

type redisLogger struct{ log *zap.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Warn(strings.TrimSpace(fmt.Sprintf(format, v...)))
}
