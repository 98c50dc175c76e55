package templates

import (
	"testing"
	"testing/fstest"
)

// FuzzLoadRoster: staff.yaml is written by product teams; any content is
// either a roster or an error, never a panic, and a loaded roster answers
// for any location.
func FuzzLoadRoster(f *testing.F) {
	f.Add("locations:\n  - location: Studio 2\n    front_desk:\n      - {id: d1, name: Desk}\n")
	f.Add("locations: []\n")
	f.Add("locations:\n  - location: ''\n")
	f.Add(": : :")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := loadRoster(fstest.MapFS{StaffFile: {Data: []byte(s)}})
		if err != nil {
			return
		}
		for _, p := range r.People("front_desk", "Studio 2") {
			if p.ID == "" || p.Name == "" {
				t.Fatalf("roster person without id or name: %+v", p)
			}
		}
	})
}
