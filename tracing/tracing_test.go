package tracing_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/tracing"
)

const upstream = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

type capture struct {
	mu   sync.Mutex
	msgs []queue.Message
}

func (c *capture) Publish(_ context.Context, msgs ...queue.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, msgs...)
	return nil
}

type fakeSender struct{ err error }

func (s fakeSender) Send(context.Context, *channels.Message) (channels.Receipt, error) {
	if s.err != nil {
		return channels.Receipt{}, s.err
	}
	return channels.Receipt{ProviderMessageID: "SM123"}, nil
}
func (fakeSender) Close() error { return nil }

func recorder() (*tracing.Tracing, *tracetest.SpanRecorder) {
	rec := tracetest.NewSpanRecorder()
	return tracing.New(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))), rec
}

// One record through a handler that publishes and sends: the handler span
// continues the upstream trace, the published record carries the handler's
// span as parent, and the provider call is the handler span's child.
func TestPropagatesThroughHandlerPublisherAndSender(t *testing.T) {
	tr, rec := recorder()
	out := &capture{}
	pub := tr.Publisher(out)
	snd := tr.Sender("twilio", fakeSender{})
	shared := []queue.Header{{Key: "traceparent", Value: []byte(upstream)}, {Key: "x-app", Value: []byte("booking")}}
	h := tr.Handler("deliver sms", func(ctx context.Context, m *queue.Message) error {
		if _, err := snd.Send(ctx, &channels.Message{NotificationID: "n1", Channel: "sms", To: "+447700900123", Text: "secret body"}); err != nil {
			return err
		}
		// Two records sharing one header slice, as the dispatcher builds them.
		return pub.Publish(ctx, queue.Message{Topic: "a", Headers: shared}, queue.Message{Topic: "b", Headers: shared})
	})
	m := &queue.Message{Topic: "herald.sms.v1", Partition: 2, Offset: 7, Headers: shared}
	if err := h(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("got %d spans, want 2", len(spans))
	}
	send, handle := spans[0], spans[1]
	if handle.Name() != "herald deliver sms" || send.Name() != "send twilio" {
		t.Fatalf("span names %q, %q", handle.Name(), send.Name())
	}
	if got := handle.SpanContext().TraceID().String(); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("handler span trace %s, want the upstream trace", got)
	}
	if got := handle.Parent().SpanID().String(); got != "00f067aa0ba902b7" || !handle.Parent().IsRemote() {
		t.Errorf("handler span parent %s (remote %v), want the upstream span", got, handle.Parent().IsRemote())
	}
	if send.Parent().SpanID() != handle.SpanContext().SpanID() {
		t.Error("provider call is not a child of the handler span")
	}
	for _, kv := range send.Attributes() {
		if strings.Contains(kv.Value.Emit(), "+447700900123") || strings.Contains(kv.Value.Emit(), "secret body") {
			t.Errorf("span attribute %s carries personal data", kv.Key)
		}
	}
	want := "00-4bf92f3577b34da6a3ce929d0e0e4736-" + handle.SpanContext().SpanID().String() + "-01"
	for _, pm := range out.msgs {
		if got := string((&pm).Header("traceparent")); got != want {
			t.Errorf("published %s traceparent %q, want %q", pm.Topic, got, want)
		}
		if got := string((&pm).Header("x-app")); got != "booking" {
			t.Errorf("published %s lost the producer's header", pm.Topic)
		}
	}
	if string(shared[0].Value) != upstream {
		t.Error("Publish modified the caller's shared header slice")
	}
}

// A record without trace context starts a new trace; publishing outside any
// span leaves headers untouched.
func TestNewTraceAndNoSpan(t *testing.T) {
	tr, rec := recorder()
	out := &capture{}
	pub := tr.Publisher(out)
	h := tr.Handler("dispatch", func(ctx context.Context, m *queue.Message) error {
		return pub.Publish(ctx, queue.Message{Topic: "x"})
	})
	if err := h(context.Background(), &queue.Message{Topic: "gym.bookings.v1"}); err != nil {
		t.Fatal(err)
	}
	sp := rec.Ended()[0]
	if sp.Parent().IsValid() {
		t.Error("span without incoming context has a parent")
	}
	if got := string((&out.msgs[0]).Header("traceparent")); !strings.Contains(got, sp.SpanContext().TraceID().String()) {
		t.Errorf("traceparent %q does not name the new trace", got)
	}
	if err := pub.Publish(context.Background(), queue.Message{Topic: "y"}); err != nil {
		t.Fatal(err)
	}
	if h := (&out.msgs[1]).Header("traceparent"); h != nil {
		t.Errorf("publishing outside a span added traceparent %q", h)
	}
}

// A failed send and a failed handler mark their spans as errors with the
// failure reason only: provider error text can quote the address.
func TestErrorsRecordReasonNotText(t *testing.T) {
	tr, rec := recorder()
	perm := failure.Perm(failure.ReasonInvalidAddress, errors.New("the 'To' number +447700900007 is not valid"))
	snd := tr.Sender("twilio", fakeSender{err: perm})
	h := tr.Handler("deliver sms", func(ctx context.Context, m *queue.Message) error {
		_, err := snd.Send(ctx, &channels.Message{Channel: "sms"})
		return err
	})
	if err := h(context.Background(), &queue.Message{}); !errors.Is(err, perm) {
		t.Fatalf("handler error %v, want the send error", err)
	}
	for _, sp := range rec.Ended() {
		if sp.Status().Description != string(failure.ReasonInvalidAddress) {
			t.Errorf("%s status %q, want the reason", sp.Name(), sp.Status().Description)
		}
		for _, ev := range sp.Events() {
			for _, kv := range ev.Attributes {
				if strings.Contains(kv.Value.Emit(), "+4477") {
					t.Errorf("%s span event %s quotes the address: %s", sp.Name(), ev.Name, kv.Value.Emit())
				}
			}
		}
	}
}

func TestSetupSilentWithoutEndpoint(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	tr, shutdown, err := tracing.Setup(context.Background(), "email", "pod-1")
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())
	// The no-op tracer still forwards the incoming context.
	out := &capture{}
	pub := tr.Publisher(out)
	h := tr.Handler("deliver email", func(ctx context.Context, m *queue.Message) error {
		if trace.SpanFromContext(ctx).IsRecording() {
			t.Error("span records without an exporter")
		}
		return pub.Publish(ctx, queue.Message{})
	})
	if err := h(context.Background(), &queue.Message{Headers: []queue.Header{{Key: "traceparent", Value: []byte(upstream)}}}); err != nil {
		t.Fatal(err)
	}
	if got := string((&out.msgs[0]).Header("traceparent")); got != upstream {
		t.Errorf("traceparent %q, want the upstream one forwarded unchanged", got)
	}
}

func TestSetupRefusesGRPC(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	_, _, err := tracing.Setup(context.Background(), "email", "pod-1")
	if err == nil || !strings.HasPrefix(err.Error(), "OTEL_EXPORTER_OTLP_PROTOCOL:") {
		t.Fatalf("err = %v, want one naming OTEL_EXPORTER_OTLP_PROTOCOL", err)
	}
}

// Spans reach an OTLP/HTTP collector, decoded with the collector's own
// protobuf types, with herald's resource attributes.
func TestSetupExportsOTLP(t *testing.T) {
	got := make(chan *collectortrace.ExportTraceServiceRequest, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "unexpected "+r.URL.Path+" "+r.Header.Get("Content-Type"), http.StatusBadRequest)
			return
		}
		b, _ := io.ReadAll(r.Body)
		req := &collectortrace.ExportTraceServiceRequest{}
		if err := proto.Unmarshal(b, req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got <- req
		w.Header().Set("Content-Type", "application/x-protobuf")
		resp, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Write(resp)
	}))
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "")
	t.Setenv("OTEL_SERVICE_NAME", "")
	tr, shutdown, err := tracing.Setup(context.Background(), "sms", "pod-7")
	if err != nil {
		t.Fatal(err)
	}
	h := tr.Handler("deliver sms", func(context.Context, *queue.Message) error { return nil })
	if err := h(context.Background(), &queue.Message{Headers: []queue.Header{{Key: "traceparent", Value: []byte(upstream)}}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil { // flushes
		t.Fatal(err)
	}
	var req *collectortrace.ExportTraceServiceRequest
	select {
	case req = <-got:
	case <-ctx.Done():
		t.Fatal("collector received nothing")
	}
	rs := req.GetResourceSpans()
	if len(rs) != 1 || len(rs[0].GetScopeSpans()) != 1 || len(rs[0].GetScopeSpans()[0].GetSpans()) != 1 {
		t.Fatalf("unexpected export shape: %v", req)
	}
	res := map[string]string{}
	for _, kv := range rs[0].GetResource().GetAttributes() {
		res[kv.GetKey()] = kv.GetValue().GetStringValue()
	}
	if res["service.name"] != "herald" || res["herald.role"] != "sms" || res["service.instance.id"] != "pod-7" {
		t.Errorf("resource attributes %v", res)
	}
	sp := rs[0].GetScopeSpans()[0].GetSpans()[0]
	if sp.GetName() != "herald deliver sms" {
		t.Errorf("span name %q", sp.GetName())
	}
	if tid := trace.TraceID(sp.GetTraceId()).String(); tid != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("exported trace id %s, want the upstream one", tid)
	}
}

// expecting is a publisher that gathers (queue.Gatherer).
type expecting struct {
	capture
	open int
}

type expectingKey struct{}

func (e *expecting) Expect(ctx context.Context) (context.Context, func()) {
	e.open++
	return context.WithValue(ctx, expectingKey{}, e), func() { e.open-- }
}

// The tracing wrapper passes Expect on to a publisher that gathers: the
// dispatcher's publisher is wrapped, and without it its events' records
// went in a request for the first and another for the rest.
func TestPublisherPassesExpectOn(t *testing.T) {
	tr, _ := recorder()
	e := &expecting{}
	ctx, done := queue.Expect(context.Background(), tr.Publisher(e))
	if e.open != 1 || ctx.Value(expectingKey{}) != e {
		t.Fatalf("%d callers expected after Expect through the wrapper (want 1), or not its context", e.open)
	}
	done()
	if e.open != 0 {
		t.Fatalf("%d callers expected after done, want 0", e.open)
	}
	_, done = queue.Expect(context.Background(), tr.Publisher(&capture{})) // one that does not gather: nothing to tell
	done()
}
