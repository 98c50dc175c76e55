package events

import (
	"testing"

	"github.com/gymhq/herald/internal/retaintest"
)

// TestCachesKeepNoRecord: the locale and zone caches are filled from event
// fields; a key stored as handed would keep the whole event it was a
// substring of for the life of the process (up to 2,048 entries each).
func TestCachesKeepNoRecord(t *testing.T) {
	if retaintest.Kept("en-AU-x-retain", func(s string) { validLocale(s) }) {
		t.Error("the locale cache keeps the event its key came from")
	}
	if retaintest.Kept("Antarctica/Vostok", func(s string) { location(s) }) {
		t.Error("the zone cache keeps the event its key came from")
	}
}
