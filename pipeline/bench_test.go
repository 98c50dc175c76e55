package pipeline_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/channels/inapp"
	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/dispatcher"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/pipeline"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/sim"
	"github.com/gymhq/herald/suppress"
	"github.com/gymhq/herald/templates"
	"github.com/gymhq/herald/topics"
	"github.com/gymhq/herald/tracing"
)

// accept is a provider that accepts every message at once.
type accept struct{}

func (accept) Send(context.Context, *channels.Message) (channels.Receipt, error) {
	return channels.Receipt{ProviderMessageID: "pm"}, nil
}

func (accept) Close() error { return nil }

// BenchmarkDeliver is a channel worker's CPU per notification without
// Kafka or Redis: the stage herald run builds (tracing off, production JSON
// logging encoded and discarded, the breaker-guarded provider, in-memory
// idempotency and suppression stores), handed the records the dispatcher
// writes for the simulator's mix of events (the pipeline scenario's). Each
// record is a fresh notification, so every one is claimed, rendered, sent
// and marked, none a duplicate.
func BenchmarkDeliver(b *testing.B) {
	tpl, err := templates.Embedded()
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	planner := &dispatcher.Planner{Templates: tpl, Now: func() time.Time { return now }}
	g := sim.New(sim.Options{Seed: 11, Prefix: "bd", Members: 2000, Classes: 200})
	ctx := context.Background()
	records := make([]queue.Message, 0, b.N)
	for len(records) < b.N {
		ep, err := planner.PlanEvent(ctx, g.Next().Value)
		if err != nil {
			b.Fatal(err)
		}
		for i := range ep.Notifications {
			v, err := notification.Encode(&ep.Notifications[i])
			if err != nil {
				b.Fatal(err)
			}
			records = append(records, queue.Message{Topic: topics.Channel(ep.Notifications[i].Channel), Value: v, Offset: int64(len(records))})
		}
	}
	records = records[:b.N]

	common := pipeline.Common{
		Config: config.Defaults(), Publisher: &publisher{}, Tracing: tracing.New(noop.NewTracerProvider()),
		Metrics: obs.NewMetrics(),
		Logger:  zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zapcore.InfoLevel)),
	}
	handlers := map[string]queue.Handler{}
	for _, ch := range []notification.Channel{notification.Email, notification.SMS, notification.Push, inapp.Name} {
		guard, err := pipeline.NewBreaker(common, ch, accept{})
		if err != nil {
			b.Fatal(err)
		}
		st, err := pipeline.Deliver(common, pipeline.Channel{
			Name: ch, Guard: guard, Renderer: tpl, Store: dedupe.NewMemory(dedupe.Options{}),
			Suppressions: suppress.NewMemory(nil), Owner: "bench",
		})
		if err != nil {
			b.Fatal(err)
		}
		handlers[topics.Channel(ch)] = st.Handler
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range records {
		m := &records[i]
		h := handlers[m.Topic]
		if h == nil {
			b.Fatalf("no stage for topic %s", m.Topic)
		}
		if err := h(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	sent := 0
	for _, ch := range []string{"email", "sms", "push", "inapp"} {
		sent += int(testutil.ToFloat64(common.Metrics.Notifications.WithLabelValues(ch, obs.OutcomeSent, "")))
	}
	if sent != len(records) {
		b.Fatalf("%d of %d records sent", sent, len(records))
	}
}
