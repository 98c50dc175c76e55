//go:build chaos

package chaos_test

// The shipped channels register themselves from channels/all, the table the
// binary imports; the scenarios plan their expectations with them.
import _ "github.com/gymhq/herald/channels/all"
