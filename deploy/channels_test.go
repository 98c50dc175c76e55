package deploy_test

// The shipped channels register themselves from channels/all, the table the
// binary imports; the manifests are checked against that registry.
import _ "github.com/gymhq/herald/channels/all"
