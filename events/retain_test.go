package events

import (
	"runtime"
	"testing"
	"unsafe"
	"weak"
)

// TestCachesKeepNoRecord: the locale and zone caches are filled from event
// fields; a key stored as handed would keep the whole event it was a
// substring of for the life of the process (up to 2,048 entries each).
func TestCachesKeepNoRecord(t *testing.T) {
	for name, cache := range map[string]func(string){
		"en-AU-x-retain":    func(s string) { validLocale(s) },
		"Antarctica/Vostok": func(s string) { location(s) },
	} {
		record := new([8192]byte)
		n := copy(record[1000:], name)
		gone := weak.Make(record)
		cache(unsafe.String(&record[1000], n))
		record = nil
		for i := 0; i < 5 && gone.Value() != nil; i++ {
			runtime.GC()
		}
		if gone.Value() != nil {
			t.Errorf("caching %q keeps the event it came from", name)
		}
	}
}
