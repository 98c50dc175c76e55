// Package retaintest checks that code handed a string does not keep the
// allocation it was cut from. herald's decoders hand out substrings of a
// whole record (notification.DecodeShared, events.Decode), so anything
// that outlives a record — a cache, a map of ids — must keep copies.
package retaintest

import (
	"runtime"
	"unsafe"
	"weak"
)

// Kept reports whether use, handed s as a substring of a larger
// allocation (as a decoded record's fields are), keeps that allocation
// alive after it returns.
//
// Only what is still reachable can keep it: a test of an object that holds
// the string (a cache in a local variable, a breaker map) must keep that
// object alive until Kept returns (runtime.KeepAlive after the call), or
// the collector frees both and Kept reports false whatever use did.
func Kept(s string, use func(string)) bool {
	record := new([8192]byte)
	n := copy(record[1000:], s)
	gone := weak.Make(record)
	use(unsafe.String(&record[1000], n))
	record = nil
	for i := 0; i < 5 && gone.Value() != nil; i++ {
		runtime.GC()
	}
	return gone.Value() != nil
}
