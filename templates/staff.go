package templates

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/gymhq/herald/events"
)

// StaffFile is the staff roster at the top of the template tree, checked
// and hot-reloaded with the templates: the people a booking event does not
// name — the front desk of each location — whom a rule reaches with
// recipients: staff.<role> (docs/templates.md, "Staff roster").
const StaffFile = "staff.yaml"

// StaffPrefix starts a rule's recipients that come from the roster.
const StaffPrefix = "staff."

// Roster is a tree's staff.yaml: people by location and role.
type Roster struct {
	byLocation map[string]map[string][]events.Person
}

// People returns the people with role at location (the event's
// class.location), in the file's order; none when the roster has none.
func (r *Roster) People(role, location string) []events.Person {
	if r == nil {
		return nil
	}
	return r.byLocation[normLocation(location)][role]
}

// Len is the number of locations.
func (r *Roster) Len() int {
	if r == nil {
		return 0
	}
	return len(r.byLocation)
}

func normLocation(s string) string { return strings.ToLower(strings.Join(strings.Fields(s), " ")) }

var staffRoleRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

type staffYAML struct {
	Locations []struct {
		Location string                   `yaml:"location"`
		Roles    map[string][]staffPerson `yaml:",inline"`
	} `yaml:"locations"`
}

type staffPerson struct {
	ID         string   `yaml:"id"`
	Name       string   `yaml:"name"`
	Email      string   `yaml:"email"`
	Phone      string   `yaml:"phone"`
	Locale     string   `yaml:"locale"`
	TimeZone   string   `yaml:"time_zone"`
	PushTokens []string `yaml:"push_tokens"`
}

// loadRoster reads staff.yaml; a tree without one has an empty roster.
func loadRoster(fsys fs.FS) (*Roster, error) {
	b, err := fs.ReadFile(fsys, StaffFile)
	if errors.Is(err, fs.ErrNotExist) {
		return &Roster{}, nil
	}
	if err != nil {
		return nil, err
	}
	if len(b) > 1<<20 {
		return nil, fmt.Errorf("is %d bytes; a roster is at most 1 MiB", len(b))
	}
	var f staffYAML
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, errors.New(yamlError(err) + " (a roster is locations: [{location, <role>: [{id, name, email, phone, locale, time_zone, push_tokens}]}])")
	}
	r := &Roster{byLocation: map[string]map[string][]events.Person{}}
	for i, l := range f.Locations {
		where := fmt.Sprintf("location %d", i+1)
		if strings.TrimSpace(l.Location) == "" {
			return nil, fmt.Errorf("%s: location is missing (the class.location booking events carry)", where)
		}
		key := normLocation(l.Location)
		if r.byLocation[key] != nil {
			return nil, fmt.Errorf("%s: %q is listed twice", where, l.Location)
		}
		roles := map[string][]events.Person{}
		for role, people := range l.Roles {
			if !staffRoleRE.MatchString(role) {
				return nil, fmt.Errorf("%s (%s): role %q is not lower-case letters, digits and _", where, l.Location, role)
			}
			for j, p := range people {
				if p.ID == "" || p.Name == "" {
					return nil, fmt.Errorf("%s (%s): %s %d needs an id and a name", where, l.Location, role, j+1)
				}
				roles[role] = append(roles[role], events.Person{
					ID: p.ID, Name: p.Name, Email: p.Email, Phone: p.Phone, Locale: p.Locale,
					TimeZone: p.TimeZone, PushTokens: p.PushTokens,
				})
			}
		}
		r.byLocation[key] = roles
	}
	return r, nil
}

// staffPeople resolves recipients staff.<role> for ev: the roster's people
// with role at the event's class.location.
func (s *Set) staffPeople(ev *events.Event, recipients string) []events.Person {
	role := strings.TrimPrefix(recipients, StaffPrefix)
	c, _ := ev.Data["class"].(map[string]any)
	loc, _ := c["location"].(string)
	return s.roster.People(role, loc)
}
