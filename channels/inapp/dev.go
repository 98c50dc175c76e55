package inapp

import "github.com/gymhq/herald/channels"

// dev is the in-app channel's stand-in: none is needed, since its
// "provider" is the feed store, which herald dev keeps in memory and its
// gateway serves (the member and dashboard pages show what arrives).
func dev(channels.DevOptions) (*channels.DevFake, error) {
	return &channels.DevFake{Close: func() {}}, nil
}
