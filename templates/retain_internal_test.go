package templates

import (
	"testing"

	"github.com/gymhq/herald/internal/retaintest"
)

// TestCachesKeepNoRecord: the locale, zone and derived-key caches are
// filled from notification data. A key stored as handed kept its whole
// record for the life of the process, up to the caches' bounds (4,096
// locales × a record of up to 1 MB from hostile events).
func TestCachesKeepNoRecord(t *testing.T) {
	if retaintest.Kept("en-GB-x-retain", func(s string) { candidates(s) }) {
		t.Error("the locale cache keeps the record its key came from")
	}
	if retaintest.Kept("America/Argentina/Ushuaia", func(s string) { loadZone(s) }) {
		t.Error("the zone cache keeps the record its key came from")
	}
	if retaintest.Kept("retain_prefix", func(s string) { derivedKeysOf(s) }) {
		t.Error("the derived-key cache keeps the record its key came from")
	}
}
