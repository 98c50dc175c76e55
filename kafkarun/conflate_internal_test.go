package kafkarun

import (
	"strconv"
	"strings"
	"testing"

	"github.com/gymhq/herald/queue"
)

// byVersion supersedes a record with a higher version: "key:version".
func byVersion(earlier, later *queue.Message) bool {
	return version(earlier) < version(later)
}

func version(m *queue.Message) int {
	_, v, _ := strings.Cut(string(m.Value), ":")
	n, _ := strconv.Atoi(v)
	return n
}

func TestConflate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string // records "key:version", "-" for a keyless one
		want    string
		dropped int
	}{
		{"one record", "a:1", "a:1", 0},
		{"distinct keys", "a:1 b:1 c:1", "a:1 b:1 c:1", 0},
		{"the last of each key", "a:1 b:1 a:2 b:2 a:3", "b:2 a:3", 3},
		{"order kept", "a:1 b:5 c:2 a:4 c:3", "b:5 a:4 c:3", 2},
		// An earlier record with a higher version is not superseded by a
		// later lower one, and it is compared with the next kept record
		// of its key, not the last one.
		{"not superseded", "a:5 a:3", "a:5 a:3", 0},
		{"chain", "a:1 a:9 a:5", "a:9 a:5", 1},
		{"chain dropped", "a:1 a:9 a:2 a:3", "a:9 a:3", 2},
		{"keyless records stay", "- - a:1 - a:2", "- - - a:2", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var msgs []*queue.Message
			for i, f := range strings.Fields(tc.in) {
				m := &queue.Message{Offset: int64(i), Value: []byte(f)}
				if f != "-" {
					k, _, _ := strings.Cut(f, ":")
					m.Key = []byte(k)
				}
				msgs = append(msgs, m)
			}
			backing := msgs
			out, n := conflate(msgs, byVersion)
			var got []string
			last := int64(-1)
			for _, m := range out {
				got = append(got, string(m.Value))
				if m.Offset <= last {
					t.Errorf("offset %d after %d", m.Offset, last)
				}
				last = m.Offset
			}
			if strings.Join(got, " ") != tc.want || n != tc.dropped {
				t.Errorf("conflate(%s) = %q, %d dropped; want %q, %d", tc.in, got, n, tc.want, tc.dropped)
			}
			for _, m := range backing[len(out):] {
				if m != nil {
					t.Errorf("the slice's tail still holds %s", m.Value)
				}
			}
		})
	}
}

func TestConflateAsksOncePerRecord(t *testing.T) {
	var msgs []*queue.Message
	for i := range 100 {
		msgs = append(msgs, &queue.Message{Offset: int64(i), Key: []byte{byte('a' + i%3)}, Value: []byte("k:" + strconv.Itoa(i))})
	}
	calls := 0
	out, n := conflate(msgs, func(e, l *queue.Message) bool {
		calls++
		if string(e.Key) != string(l.Key) || e.Offset >= l.Offset {
			t.Fatalf("asked about %d and %d of keys %s, %s", e.Offset, l.Offset, e.Key, l.Key)
		}
		return true
	})
	if len(out) != 3 || n != 97 || calls != 97 {
		t.Errorf("%d kept, %d dropped, %d calls; want 3, 97, 97", len(out), n, calls)
	}
}
