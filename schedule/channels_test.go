package schedule

// The shipped channels register themselves from channels/all, the table the
// binary imports; every test binary of this package, internal tests too,
// sees them through this import.
import _ "github.com/gymhq/herald/channels/all"
