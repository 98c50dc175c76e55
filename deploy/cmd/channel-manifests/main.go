// Command channel-manifests writes deploy/base/channels.yaml, every channel
// role's Deployment, ScaledObject and PodDisruptionBudget, from the channel
// table (package channelmanifests):
//
//	cd deploy && go run ./cmd/channel-manifests
package main

import (
	"fmt"
	"os"

	"github.com/gymhq/herald/deploy/channelmanifests"
)

func main() {
	b, err := channelmanifests.Generate()
	if err == nil {
		err = os.WriteFile(channelmanifests.File, b, 0o644)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "channel-manifests: %v\n", err)
		os.Exit(1)
	}
}
