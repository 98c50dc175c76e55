package templates

import "github.com/gymhq/herald/notification"

// dataIndex finds a key of a notification's data in about the time of a
// map lookup. Data holds its fields in key order, and a binary search of
// an event's keys (22–29 in the shipped samples), most of them sharing a
// prefix (class_, recipient_), compared strings well into them: searching
// was 17% of BenchmarkRender (email) when Data stopped being a map (issue
// 14). A map filled for each render costs about what it saves (1.1–1.2 µs
// to clear and fill a pooled one with forty keys, a scratch benchmark);
// this table is built in one pass over the keys, 256 bytes, and pooled
// with the view.
//
// Each slot holds a field's index plus one (0: empty), at the slot of its
// key's hash or the next free one after it. Data of more than maxIndexed
// fields is searched instead (Data.Lookup); real events stay far under it.
type dataIndex struct {
	slots [indexSlots]uint8
	n     int                 // fields indexed; -1: too many, search instead
	first *notification.Field // the first of them: which data it indexes
}

const (
	indexSlots = 256
	maxIndexed = 127 // under half the slots full: probes stay short
)

// build indexes fs, replacing what the index held.
func (x *dataIndex) build(fs []notification.Field) {
	if x.n != 0 {
		clear(x.slots[:])
	}
	x.first = nil
	if len(fs) > maxIndexed {
		x.n = -1
		return
	}
	x.n = len(fs)
	if len(fs) > 0 {
		x.first = &fs[0]
	}
	for i := range fs {
		h := keyHash(fs[i].Key)
		for x.slots[h] != 0 {
			h = (h + 1) % indexSlots
		}
		x.slots[h] = uint8(i + 1)
	}
}

// lookup is k's value in d, which the index was built from (an index of
// other data, or none, searches d).
func (x *dataIndex) lookup(d notification.Data, k string) (string, bool) {
	fs := d.Fields()
	if x.n != len(fs) || len(fs) > 0 && x.first != &fs[0] {
		return d.Lookup(k)
	}
	for h := keyHash(k); x.slots[h] != 0; h = (h + 1) % indexSlots {
		if f := &fs[x.slots[h]-1]; len(f.Key) == len(k) && f.Key == k {
			return f.Value, true
		}
	}
	return "", false
}

// keyHash is a slot for k from its length and three of its bytes: enough
// to tell apart most keys of one event's data (at most one collision in
// each shipped sample's planned data), and a collision costs one string
// comparison more, never a wrong answer. The products carry the bytes
// into the high bits, which are the slot.
func keyHash(k string) uint {
	n := uint32(len(k))
	if n == 0 {
		return 0
	}
	h := n*0x9E3779B1 ^ uint32(k[n-1])*0x85EBCA77 ^ uint32(k[n/2])*0xC2B2AE3D ^ uint32(k[n*3/4])*0x27D4EB2F
	return uint(h >> 24) // indexSlots is 256
}

// reset empties the index for reuse.
func (x *dataIndex) reset() { x.build(nil) }
