package templates

import (
	"runtime"
	"testing"
	"unsafe"
	"weak"
)

// keptRecord reports whether cache, handed a key that is a substring of a
// larger allocation (as a decoded notification's fields are substrings of
// its whole record), keeps that allocation alive afterwards.
func keptRecord(t *testing.T, key string, cache func(string)) bool {
	t.Helper()
	record := new([8192]byte)
	n := copy(record[1000:], key)
	gone := weak.Make(record)
	cache(unsafe.String(&record[1000], n))
	record = nil
	for i := 0; i < 5 && gone.Value() != nil; i++ {
		runtime.GC()
	}
	return gone.Value() != nil
}

// TestCachesKeepNoRecord: the locale, zone and derived-key caches are
// filled from notification data. A key stored as handed kept its whole
// record for the life of the process, up to the caches' bounds (4,096
// locales × a record of up to 1 MB from hostile events).
func TestCachesKeepNoRecord(t *testing.T) {
	if keptRecord(t, "en-GB-x-retain", func(s string) { candidates(s) }) {
		t.Error("the locale cache keeps the record its key came from")
	}
	if keptRecord(t, "America/Argentina/Ushuaia", func(s string) { loadZone(s) }) {
		t.Error("the zone cache keeps the record its key came from")
	}
	if keptRecord(t, "retain_prefix", func(s string) { derivedKeysOf(s) }) {
		t.Error("the derived-key cache keeps the record its key came from")
	}
}
