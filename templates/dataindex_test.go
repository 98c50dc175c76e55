package templates

import (
	"strconv"
	"testing"

	"github.com/gymhq/herald/notification"
)

// The render's index answers as Data.Lookup: for data of no fields up to
// past what it indexes, keys that collide in its table, the empty key,
// absent keys, and data it was not built from (a view made without fill,
// or other data of as many fields).
func TestDataIndexAgreesWithLookup(t *testing.T) {
	var x dataIndex
	for n := 0; n <= maxIndexed+3; n++ {
		fs := make([]notification.Field, 0, n)
		for i := range n {
			k := "k" + strconv.Itoa(i)
			switch i % 3 {
			case 1:
				k = "class_" + k + "_x" // a length and end bytes shared
			case 2:
				k = "recipient_" + k
			}
			if i == 5 {
				k = ""
			}
			fs = append(fs, notification.Field{Key: k, Value: "v" + strconv.Itoa(i)})
		}
		d := notification.NewData(fs)
		// As many fields, other keys.
		ofs := make([]notification.Field, 0, n)
		for _, f := range d.Fields() {
			ofs = append(ofs, notification.Field{Key: f.Key + "o", Value: "other"})
		}
		other := notification.NewData(ofs)
		x.build(d.Fields())
		probes := []string{"absent", "k", "class_", "recipient_k1", "zz"}
		for _, f := range d.Fields() {
			probes = append(probes, f.Key, f.Key+"o")
		}
		for _, k := range probes {
			wv, wok := d.Lookup(k)
			if v, ok := x.lookup(d, k); v != wv || ok != wok {
				t.Fatalf("%d fields: lookup(%q) = %q, %v; Lookup %q, %v", n, k, v, ok, wv, wok)
			}
			ov, ook := other.Lookup(k)
			if v, ok := x.lookup(other, k); v != ov || ok != ook {
				t.Fatalf("%d fields, data it was not built from: lookup(%q) = %q, %v; want %q, %v", n, k, v, ok, ov, ook)
			}
		}
		if n%2 == 0 {
			x.reset()
		}
	}
	var unfilled view
	unfilled.data = notification.DataOf(map[string]string{"a": "1"})
	if v, ok := unfilled.lookup("a"); !ok || v != "1" {
		t.Errorf("a view made without fill: %q, %v", v, ok)
	}
}
