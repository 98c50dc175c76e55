package main

import (
	"context"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/tracing"
)

// setupTracing returns the tracer the fleet's decorators use: t when given
// (tests, dev), otherwise OTLP export configured by the standard OTEL_*
// environment, or a no-op that still forwards incoming trace context. The
// exporter's shutdown (which flushes buffered spans) is added to closers.
func setupTracing(cfg *config.Config, log *zap.Logger, t *tracing.Tracing, closers *[]func()) (*tracing.Tracing, error) {
	if t != nil {
		return t, nil
	}
	t, shutdown, err := tracing.Setup(context.Background(), string(cfg.Role), cfg.InstanceID)
	if err != nil {
		return nil, err
	}
	if tracing.Exporting(os.Getenv) {
		log.Info("exporting traces over OTLP")
	}
	*closers = append(*closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			log.Warn("flushing traces failed", zap.Error(err))
		}
	})
	return t, nil
}
