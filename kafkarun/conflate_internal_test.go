package kafkarun

import (
	"strconv"
	"strings"
	"testing"

	"github.com/gymhq/herald/queue"
)

// readTest reads "key:version" and "key:version/scope"; a version that is
// not a number does not read.
func readTest(m *queue.Message) (string, int64, bool) {
	_, rest, _ := strings.Cut(string(m.Value), ":")
	v, scope, _ := strings.Cut(rest, "/")
	n, err := strconv.ParseInt(v, 10, 64)
	return scope, n, err == nil
}

func TestConflate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string // records "key:version[/scope]", "-" for a keyless one
		want    string
		dropped int
	}{
		{"one record", "a:1", "a:1", 0},
		{"distinct keys", "a:1 b:1 c:1", "a:1 b:1 c:1", 0},
		{"the last of each key", "a:1 b:1 a:2 b:2 a:3", "b:2 a:3", 3},
		{"order kept", "a:1 b:5 c:2 a:4 c:3", "b:5 a:4 c:3", 2},
		// An earlier record with a version as high or higher is kept, and
		// a record is compared with the next kept record of its key.
		{"not superseded", "a:5 a:3 a:3", "a:5 a:3 a:3", 0},
		{"chain", "a:1 a:9 a:5", "a:9 a:5", 1},
		{"chain dropped", "a:1 a:9 a:2 a:3", "a:9 a:3", 2},
		{"keyless records stay", "- - a:1 - a:2", "- - - a:2", 1},
		{"another scope", "a:1/x a:2/y a:3/y", "a:1/x a:3/y", 1},
		{"unreadable", "a:1 a:? a:2 a:3", "a:1 a:? a:3", 1},
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
			out, n := conflate(msgs, readTest)
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

// TestConflateReadsRepeatedKeysOnce: a fetch of distinct keys (a steady
// pace) reads no record; otherwise each record is read at most once.
func TestConflateReadsRepeatedKeysOnce(t *testing.T) {
	reads := map[*queue.Message]int{}
	read := func(m *queue.Message) (string, int64, bool) {
		reads[m]++
		return readTest(m)
	}
	var distinct []*queue.Message
	for i := range 50 {
		distinct = append(distinct, &queue.Message{Offset: int64(i), Key: []byte("k" + strconv.Itoa(i)), Value: []byte("k:1")})
	}
	if out, n := conflate(distinct, read); len(out) != 50 || n != 0 || len(reads) != 0 {
		t.Errorf("distinct keys: %d kept, %d dropped, %d records read", len(out), n, len(reads))
	}
	var msgs []*queue.Message
	for i := range 100 {
		msgs = append(msgs, &queue.Message{Offset: int64(i), Key: []byte{byte('a' + i%3)}, Value: []byte("k:" + strconv.Itoa(i))})
	}
	out, n := conflate(msgs, read)
	if len(out) != 3 || n != 97 {
		t.Errorf("%d kept, %d dropped; want 3, 97", len(out), n)
	}
	for m, k := range reads {
		if k > 1 {
			t.Errorf("%s read %d times", m.Value, k)
		}
	}
}
