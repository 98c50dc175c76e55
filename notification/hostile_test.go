package notification_test

import (
	"encoding/binary"
	"runtime"
	"testing"

	"github.com/gymhq/herald/notification"
)

// hostile builds a 960,000-byte binary record: 8 empty strings, then a
// data count (or, with data=false, a cancel_keys count) as large as the
// length check allows, then zero bytes. It is refused, but only after the
// decoder allocated for the count.
func hostile(data bool) []byte {
	const size = notification.MaxEncodedSize
	b := []byte{0x01, 20}
	b = append(b, make([]byte, 8)...) // id..to, empty
	if data {
		rest := size - len(b) - 3
		b = binary.AppendUvarint(b, uint64(rest/2)+1)
	} else {
		b = append(b, 0)    // no data
		b = append(b, 0)    // priority ""
		b = append(b, 0)    // created_at zero
		b = append(b, 0)    // attempt 0
		b = append(b, 0, 0) // not_before, first_failed_at
		b = append(b, 0, 0) // category, time_zone
		b = append(b, 0)    // due_at
		b = append(b, 0)    // deferred
		rest := size - len(b) - 3
		b = binary.AppendUvarint(b, uint64(rest))
	}
	return append(b, make([]byte, size-len(b))...)
}

func allocated(f func()) uint64 {
	var a, z runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&z)
	return z.TotalAlloc - a.TotalAlloc
}

func TestHostileCountsAllocateLittle(t *testing.T) {
	for _, c := range []struct {
		name string
		data bool
		dec  func([]byte) error
	}{
		{"Decode/data", true, func(b []byte) error { _, err := notification.Decode(b); return err }},
		{"Decode/cancel_keys", false, func(b []byte) error { _, err := notification.Decode(b); return err }},
		{"DecodeSharedInto/cancel_keys", false, func(b []byte) error {
			var n notification.Notification
			_, _, err := notification.DecodeSharedInto(b, &n, make([]notification.Field, 0, 48))
			return err
		}},
	} {
		b := hostile(c.data)
		var err error
		got := allocated(func() { err = c.dec(b) })
		t.Logf("%s: %d-byte record, err=%v, allocated %.1f MB (%.0fx the record)", c.name, len(b), err, float64(got)/1e6, float64(got)/float64(len(b)))
		if err == nil {
			t.Fatalf("%s accepted", c.name)
		}
		if got > 4*uint64(len(b)) {
			t.Errorf("%s: a refused %d-byte record allocated %d bytes", c.name, len(b), got)
		}
	}
}
