// Package queue is the contract between the Kafka runtime and the pipeline
// stages (dispatcher, channel workers). It names a message, a handler and a
// publisher without any Kafka type, so the stages can be read, tested and
// benchmarked without a broker, and the runtime can change without touching
// them.
package queue

import (
	"context"
	"time"
)

// Header is a record header.
type Header struct {
	Key   string
	Value []byte
}

// Message is one record read from, or to be written to, a topic.
type Message struct {
	Topic     string
	Partition int
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []Header
	Time      time.Time
}

// MaxRecordBytes bounds one record herald writes: its key, value and
// headers together. Kafka's default max.message.bytes is 1048588 and
// applies to a whole record batch with its framing; 1,000,000 leaves that
// framing room, and the producer batches no more than this per partition,
// so a record within it is never refused for its size by a broker or topic
// left at the default. The other limits (events, notifications, DLQ
// values) are set under it: docs/resilience.md, "Size limits".
const MaxRecordBytes = 1_000_000

// Size is the bytes of m that count against MaxRecordBytes.
func (m *Message) Size() int {
	n := len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// Header returns the value of the first header named key, or nil.
func (m *Message) Header(key string) []byte {
	for _, h := range m.Headers {
		if h.Key == key {
			return h.Value
		}
	}
	return nil
}

// Handler processes one message.
//
// Returning nil means the message has a durable outcome (sent, deduplicated,
// suppressed, skipped, or written to the DLQ or a retry topic) and its offset
// may be committed once every earlier message's outcome is durable too.
// Returning an error means no durable outcome could be reached (a dependency
// such as Redis or Kafka is unavailable): the runtime keeps the message and
// calls the handler again with backoff. A handler must therefore decide
// poison and permanent failures itself (by publishing to the DLQ) rather
// than returning them.
//
// ctx ends when the message must be abandoned: the partition was revoked and
// the drain deadline passed, or the process is stopping. Handlers are called
// concurrently, but never concurrently for two messages with the same key
// on the same partition, and those are called in offset order.
type Handler func(ctx context.Context, m *Message) error

// Publisher writes messages durably. Publish returns nil only after every
// message was acknowledged by all in-sync replicas. It is safe for
// concurrent use.
type Publisher interface {
	Publish(ctx context.Context, msgs ...Message) error
}

// Gatherer is a Publisher that can hold an idle write briefly for callers
// that have started and will publish soon, to write their records together.
type Gatherer interface {
	// Expect says the caller on ctx will publish soon; its Publish calls
	// are made on the context returned. done says it has published or
	// will not.
	Expect(ctx context.Context) (context.Context, func())
}

// Expect calls p's Expect when p is a Gatherer, and otherwise returns ctx
// and a done that does nothing.
func Expect(ctx context.Context, p Publisher) (context.Context, func()) {
	if g, ok := p.(Gatherer); ok {
		return g.Expect(ctx)
	}
	return ctx, func() {}
}

type stoppingKey struct{}

// WithStopping returns a context whose Stopping channel is ch. The runtime
// closes ch when the message's partition stops fetching (revoke or
// shutdown): handlers should then finish work already started but abandon
// waits (for a retry's not-before time, or for another worker's claim) by
// returning an error, leaving the message uncommitted for the next owner.
func WithStopping(ctx context.Context, ch <-chan struct{}) context.Context {
	return context.WithValue(ctx, stoppingKey{}, ch)
}

// Stopping returns the channel closed when the runtime stops the message's
// partition, or nil (never closed) outside a runtime.
func Stopping(ctx context.Context) <-chan struct{} {
	ch, _ := ctx.Value(stoppingKey{}).(<-chan struct{})
	return ch
}
