package deploy_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/gymhq/herald/deploy/channelmanifests"
)

// TestChannelManifestsInSync: base/channels.yaml is what the channel table
// generates, so a channel added by its folder gets its workers by running
// the generator, and a stale file fails here.
func TestChannelManifestsInSync(t *testing.T) {
	want, err := channelmanifests.Generate()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(channelmanifests.File)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is out of date with the channel table: run `cd deploy && go run ./cmd/channel-manifests`", channelmanifests.File)
	}
}
