package protect_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/internal/retaintest"
	"github.com/gymhq/herald/protect"
)

// A webhook message's To is a substring of its whole Kafka record
// (worker: DecodeSharedInto, then Render copies n.To into the message).
// Keyed keeps it as a map key (and in the onState closure) for the life of
// the process, and with it the whole record: up to maxKeyed (1000) records
// of up to 960 KB each.
func TestKeyedKeepsNoRecord(t *testing.T) {
	e := &endpoints{down: map[string]bool{}, calls: map[string]int{}}
	k, err := protect.NewKeyed(e, protect.BreakerConfig{Name: "webhook", Failures: 3, OpenFor: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if retaintest.Kept("crm-partner", func(s string) {
		_, _ = k.Send(context.Background(), &channels.Message{To: s})
		e.mu.Lock()
		clear(e.calls) // the fake's own map is not the point
		e.mu.Unlock()
	}) {
		t.Error("the endpoint breaker map keeps the record its key came from")
	}
	runtime.KeepAlive(k) // the Keyed lives as long as the process
}
