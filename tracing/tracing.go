// Package tracing carries W3C trace context from a booking event to every
// notification it causes and every provider call made for them, and exports
// spans over OTLP when the standard OpenTelemetry environment asks for it.
//
// The context travels in Kafka record headers (`traceparent`, `tracestate`):
// the dispatcher's span is a child of the producer's, each channel worker's
// span a child of the dispatcher's, and each provider call a child of the
// worker's. A retry record and a DLQ record carry the context of the attempt
// that wrote them, so one trace shows an event's whole story across roles and
// retries.
//
// Everything here is a decorator (a queue.Handler middleware, a
// queue.Publisher and a channels.Sender wrapper), so the pipeline stages do
// not know tracing exists. Without an exporter the tracer is a no-op that
// still forwards the incoming context, so a trace started upstream is not
// broken by a herald that does not export.
//
// This package must never put message content, addresses or other personal
// data into span attributes: spans leave the cluster.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/queue"
)

// ScopeName names herald's instrumentation scope.
const ScopeName = "github.com/gymhq/herald"

// Tracing is the tracer and propagator herald's decorators use. The zero
// value is not usable; build one with Setup or New.
type Tracing struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	// off: the provider is OpenTelemetry's no-op one (no exporter), whose
	// spans record nothing. The decorators then only carry the incoming
	// context through, without building attributes nobody reads (issue
	// 14: 0.7 KB and 10 allocations per notification in BenchmarkDeliver).
	off bool
}

// New returns Tracing over an explicit provider (tests use an in-memory
// recorder). The propagator is W3C trace context plus baggage.
func New(tp trace.TracerProvider) *Tracing {
	_, off := tp.(noop.TracerProvider)
	return &Tracing{
		off:    off,
		tracer: tp.Tracer(ScopeName),
		prop:   propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}
}

// Exporting reports whether env (os.Getenv in production) asks for OTLP
// export: OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
// set, and OTEL_TRACES_EXPORTER not "none".
func Exporting(env func(string) string) bool {
	if env("OTEL_TRACES_EXPORTER") == "none" || env("OTEL_SDK_DISABLED") == "true" {
		return false
	}
	return env("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Setup builds Tracing from the standard OpenTelemetry environment
// variables. When Exporting(os.Getenv) is false it returns a no-op tracer that still propagates
// incoming context, and a shutdown that does nothing. Otherwise spans are
// batched and sent over OTLP/HTTP (protobuf) to the configured endpoint;
// the exporter itself reads the rest of the OTEL_EXPORTER_OTLP_* variables
// (headers, timeout, certificate, compression). OTLP over gRPC is not
// built in: OTEL_EXPORTER_OTLP_PROTOCOL=grpc is refused with an error naming
// the variable, rather than silently exporting nothing.
//
// service.name defaults to "herald" (OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES override it); role and instance are added as
// resource attributes so one trace shows which pod did what.
func Setup(ctx context.Context, role, instance string) (*Tracing, func(context.Context) error, error) {
	env := os.Getenv
	nop := func(context.Context) error { return nil }
	if !Exporting(env) {
		return New(noop.NewTracerProvider()), nop, nil
	}
	for _, v := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if p := env(v); p != "" {
			if p != "http/protobuf" {
				return nil, nil, fmt.Errorf("%s: %q is not supported; herald exports OTLP over http/protobuf", v, p)
			}
			break
		}
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT: %w", err)
	}
	res, err := resource.Merge(
		resource.NewSchemaless(semconv.ServiceName("herald"), attribute.String("herald.role", role), semconv.ServiceInstanceID(instance)),
		resource.Environment(),
	)
	if err != nil {
		// A malformed OTEL_RESOURCE_ATTRIBUTES: refuse rather than export
		// spans that the collector files under the wrong service.
		return nil, nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)),
		sdktrace.WithResource(res),
	)
	return New(tp), tp.Shutdown, nil
}

// Extract returns ctx carrying the trace context in m's headers, if any.
func (t *Tracing) Extract(ctx context.Context, m *queue.Message) context.Context {
	return t.prop.Extract(ctx, headerCarrier{m: m})
}

// Inject writes ctx's trace context into m's headers, replacing any there.
func (t *Tracing) Inject(ctx context.Context, m *queue.Message) {
	t.prop.Inject(ctx, headerCarrier{m: m})
}

// Handler wraps next so that each record is handled in a consumer span that
// continues the record's trace. stage names the span ("dispatch",
// "deliver email"). A returned error (no durable outcome; the runtime will
// try again) marks the span as an error.
func (t *Tracing) Handler(stage string, next queue.Handler) queue.Handler {
	name := "herald " + stage
	if t.off {
		// The no-op tracer's span carries the record's context (or none)
		// to what the handler publishes, and records nothing.
		return func(ctx context.Context, m *queue.Message) error {
			ctx, _ = t.tracer.Start(t.Extract(ctx, m), name)
			return next(ctx, m)
		}
	}
	return func(ctx context.Context, m *queue.Message) error {
		ctx, span := t.tracer.Start(t.Extract(ctx, m), name,
			trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(
				semconv.MessagingSystemKafka,
				semconv.MessagingDestinationName(m.Topic),
				semconv.MessagingDestinationPartitionID(strconv.Itoa(m.Partition)),
				semconv.MessagingKafkaMessageOffset(int(m.Offset)),
			))
		if id := m.Header(headerEventID); id != nil {
			span.SetAttributes(attribute.String("herald.event_id", string(id)))
		}
		err := next(ctx, m)
		if err != nil {
			recordFailure(span, err)
		}
		span.End()
		return err
	}
}

// headerEventID is dispatcher.HeaderEventID; repeated here because tracing
// must not import the pipeline it decorates.
const headerEventID = "herald-event-id"

// Publisher wraps next so that every published record carries the trace
// context of the ctx it is published with: the dispatcher's span for
// notifications, the worker's span for retries and dead letters.
func (t *Tracing) Publisher(next queue.Publisher) queue.Publisher {
	return publisher{t: t, next: next}
}

type publisher struct {
	t    *Tracing
	next queue.Publisher
}

func (p publisher) Expect(ctx context.Context) (context.Context, func()) {
	return queue.Expect(ctx, p.next)
}

func (p publisher) Publish(ctx context.Context, msgs ...queue.Message) error {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return p.next.Publish(ctx, msgs...)
	}
	for i := range msgs {
		// Copy the header slice: the caller may share it between records
		// (the dispatcher copies the event's headers into each).
		msgs[i].Headers = append([]queue.Header(nil), msgs[i].Headers...)
		p.t.Inject(ctx, &msgs[i])
	}
	return p.next.Publish(ctx, msgs...)
}

// Sender wraps next so that each provider call is a client span, a child
// of the worker's span for that record. The span records the failure class
// and reason, never the address or content.
func (t *Tracing) Sender(provider string, next channels.Sender) channels.Sender {
	if t.off {
		return next // a no-op span would record nothing and change no context that is read
	}
	return sender{t: t, next: next, name: "send " + provider, provider: provider}
}

type sender struct {
	t        *Tracing
	next     channels.Sender
	name     string
	provider string
}

func (s sender) Send(ctx context.Context, m *channels.Message) (channels.Receipt, error) {
	ctx, span := s.t.tracer.Start(ctx, s.name, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("herald.provider", s.provider),
			attribute.String("herald.channel", string(m.Channel)),
			attribute.String("herald.notification_id", m.NotificationID),
		))
	defer span.End()
	r, err := s.next.Send(ctx, m)
	if err != nil {
		recordFailure(span, err)
		return r, err
	}
	span.SetAttributes(attribute.String("herald.provider_message_id", r.ProviderMessageID))
	return r, nil
}

func (s sender) Close() error { return s.next.Close() }

// recordFailure marks span as failed with the error's class and reason
// only: error text from providers and stores can quote an address.
func recordFailure(span trace.Span, err error) {
	reason := string(failure.ReasonOf(err))
	span.RecordError(errors.New(reason))
	span.SetAttributes(
		attribute.String("herald.failure.class", failure.ClassOf(err).String()),
		attribute.String("herald.failure.reason", reason),
	)
	span.SetStatus(codes.Error, reason)
}

// headerCarrier adapts a record's headers to the propagation API. Keys are
// matched case-insensitively on read, as HTTP would; written lower-case.
type headerCarrier struct{ m *queue.Message }

func (c headerCarrier) Get(key string) string {
	for _, h := range c.m.Headers {
		if strings.EqualFold(h.Key, key) {
			return string(h.Value)
		}
	}
	return ""
}

func (c headerCarrier) Set(key, value string) {
	key = strings.ToLower(key)
	hs := c.m.Headers[:0]
	for _, h := range c.m.Headers {
		if !strings.EqualFold(h.Key, key) {
			hs = append(hs, h)
		}
	}
	c.m.Headers = append(hs, queue.Header{Key: key, Value: []byte(value)})
}

func (c headerCarrier) Keys() []string {
	ks := make([]string, len(c.m.Headers))
	for i, h := range c.m.Headers {
		ks[i] = h.Key
	}
	return ks
}
