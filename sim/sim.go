// Package sim generates realistic booking events — the five v1 types over a
// pool of members, instructors and classes — for `herald dev`, tests and
// benchmarks. It plays the booking service; herald never imports it.
package sim

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"
)

// Event is one generated booking event, ready to produce.
type Event struct {
	ID    string
	Type  string
	Key   []byte // class id: the booking service's partition key
	Value []byte // CloudEvents JSON
}

// Generator produces events deterministically from its seed. Not safe for
// concurrent use.
type Generator struct {
	rng     *rand.Rand
	seq     int
	prefix  string
	members []person
	classes []class
	now     func() time.Time
	// bookings are each class's confirmed bookings, with Options.Bookings.
	bookings map[string][]booking
}

type booking struct {
	id     string
	member int
}

type person struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Email       string          `json:"email,omitempty"`
	Phone       string          `json:"phone,omitempty"`
	Locale      string          `json:"locale,omitempty"`
	TimeZone    string          `json:"time_zone,omitempty"`
	PushTokens  []string        `json:"push_tokens,omitempty"`
	Preferences map[string]bool `json:"preferences,omitempty"`
}

type class struct {
	ID         string  `json:"id"`
	Name       string  `json:"name"`
	StartsAt   string  `json:"starts_at"`
	EndsAt     string  `json:"ends_at"`
	TimeZone   string  `json:"time_zone"`
	Location   string  `json:"location"`
	Capacity   int     `json:"capacity"`
	Booked     int     `json:"booked"`
	Instructor *person `json:"instructor,omitempty"`
}

var (
	firstNames = []string{"Emma", "Lucía", "Oliver", "Sofía", "Noah", "Mateo", "Amelia", "Hugo", "Isla", "Chloé", "Ana", "Jack"}
	lastNames  = []string{"Clarke", "García", "Smith", "Martínez", "Jones", "López", "Taylor", "Díaz", "Brown", "Romero"}
	locales    = []string{"en-GB", "en-US", "es-ES", "es-MX", "fr-FR", "en"}
	zones      = []string{"Europe/London", "Europe/Madrid", "America/New_York", "America/Mexico_City"}
	classNames = []string{"Spin 45", "Yoga Flow", "HIIT Blast", "Pilates Core", "Boxfit", "Zumba", "Body Pump"}
	studios    = []string{"Studio 1, Shoreditch", "Studio 2, Shoreditch", "Sala Norte, Calle Mayor 12", "Rooftop, Brooklyn"}
)

// Options shape the generated population.
type Options struct {
	Seed    uint64
	Members int // default 200
	Classes int // default 40
	// Prefix makes event ids unique across generators (default "sim").
	Prefix string
	// Bookings makes the events a booking service's: a cancellation
	// cancels a booking confirmed earlier (its member, its id), a class
	// cancellation's attendees are the class's bookings, classes have
	// capacities of 12 to 24, and half the bookings go to four popular
	// classes, so a dashboard's classes fill up within minutes (herald
	// dev). Without it every event names its own recipients, which tests
	// that key deliveries by address rely on.
	Bookings bool
	Now      func() time.Time
	// ClassesAhead is how far after Now's hour the first class starts
	// (default 24h); the others follow every 90 minutes.
	ClassesAhead time.Duration
}

// New returns a Generator.
func New(o Options) *Generator {
	if o.Members <= 0 {
		o.Members = 200
	}
	if o.Classes <= 0 {
		o.Classes = 40
	}
	if o.Prefix == "" {
		o.Prefix = "sim"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	g := &Generator{rng: rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15)), prefix: o.Prefix, now: o.Now}
	if o.Bookings {
		g.bookings = map[string][]booking{}
	}
	for i := range o.Members {
		g.members = append(g.members, g.person("mem", i))
	}
	if o.ClassesAhead <= 0 {
		o.ClassesAhead = 24 * time.Hour
	}
	base := o.Now().Truncate(time.Hour).Add(o.ClassesAhead)
	for i := range o.Classes {
		start := base.Add(time.Duration(i%14) * 90 * time.Minute)
		ins := g.person("ins", i)
		ins.PushTokens, ins.Preferences, ins.Phone = nil, nil, ""
		g.classes = append(g.classes, class{
			ID:       fmt.Sprintf("cls_%03d", i),
			Name:     classNames[i%len(classNames)],
			StartsAt: start.UTC().Format(time.RFC3339), EndsAt: start.Add(45 * time.Minute).UTC().Format(time.RFC3339),
			TimeZone: zones[i%len(zones)], Location: studios[i%len(studios)],
			Capacity: 20, Booked: 5 + i%15, Instructor: &ins,
		})
		if o.Bookings {
			c := &g.classes[len(g.classes)-1]
			c.Capacity, c.Booked = 12+4*(i%4), 0
		}
	}
	return g
}

func (g *Generator) person(kind string, i int) person {
	first := firstNames[g.rng.IntN(len(firstNames))]
	last := lastNames[g.rng.IntN(len(lastNames))]
	p := person{
		ID:       fmt.Sprintf("%s_%04d", kind, i),
		Name:     first + " " + last,
		Email:    fmt.Sprintf("%s.%04d@example.com", kind, i),
		Phone:    fmt.Sprintf("+4477009%05d", i),
		Locale:   locales[g.rng.IntN(len(locales))],
		TimeZone: zones[g.rng.IntN(len(zones))],
	}
	if g.rng.IntN(4) != 0 {
		p.PushTokens = []string{fmt.Sprintf("fcm_%s_%04d_a", kind, i)}
		if g.rng.IntN(5) == 0 {
			p.PushTokens = append(p.PushTokens, fmt.Sprintf("fcm_%s_%04d_b", kind, i))
		}
	}
	if g.rng.IntN(6) == 0 {
		p.Preferences = map[string]bool{"email": true, "sms": false, "push": true}
	}
	return p
}

// Types are the event types Next chooses from, with their weights.
var Types = []struct {
	Type   string
	Weight int
}{
	{"gym.booking.confirmed", 40},
	{"gym.booking.cancelled", 15},
	{"gym.waitlist.promoted", 10},
	{"gym.class.reminder", 30},
	{"gym.class.cancelled", 5},
}

// Next returns the next event.
func (g *Generator) Next() Event {
	w := g.rng.IntN(100)
	t := Types[0].Type
	for _, c := range Types {
		if w < c.Weight {
			t = c.Type
			break
		}
		w -= c.Weight
	}
	return g.Make(t)
}

// Make returns an event of type t.
func (g *Generator) Make(t string) Event { return g.MakeFor(t, "") }

// MakeFor returns an event of type t for the member with memberID (one of
// the generated members, or a new one with that id); "" picks one.
func (g *Generator) MakeFor(t, memberID string) Event {
	g.seq++
	id := fmt.Sprintf("evt_%s_%07d", g.prefix, g.seq)
	ci := g.rng.IntN(len(g.classes))
	if g.bookings != nil && g.rng.IntN(2) == 0 {
		ci = g.rng.IntN(min(4, len(g.classes))) // a popular class
	}
	mi := g.rng.IntN(len(g.members))
	if memberID != "" {
		mi = g.memberIndex(memberID)
	}
	bkg := fmt.Sprintf("bkg_%s_%07d", g.prefix, g.seq)
	var attendees []person
	if g.bookings != nil {
		cid := g.classes[ci].ID
		switch t {
		case "gym.booking.confirmed", "gym.waitlist.promoted":
			g.bookings[cid] = append(g.bookings[cid], booking{id: bkg, member: mi})
		case "gym.booking.cancelled":
			if bs := g.bookings[cid]; len(bs) > 0 {
				k := g.rng.IntN(len(bs))
				if memberID != "" {
					k = -1
					for j, b := range bs {
						if b.member == mi {
							k = j
						}
					}
				}
				if k >= 0 {
					bkg, mi = bs[k].id, bs[k].member
					g.bookings[cid] = append(bs[:k:k], bs[k+1:]...)
				}
			}
		case "gym.class.cancelled":
			for _, b := range g.bookings[cid] {
				attendees = append(attendees, g.members[b.member])
			}
			delete(g.bookings, cid)
		}
		g.classes[ci].Booked = len(g.bookings[cid])
	}
	c := g.classes[ci]
	m := g.members[mi]
	data := map[string]any{"class": c}
	switch t {
	case "gym.class.cancelled":
		if len(attendees) > 0 {
			data["attendees"] = attendees
			data["reason"] = "Instructor unwell"
			break
		}
		n := 2 + g.rng.IntN(4)
		att := make([]person, 0, n)
		for _, k := range g.rng.Perm(len(g.members))[:n] {
			att = append(att, g.members[k])
		}
		data["attendees"] = att
		data["reason"] = "Instructor unwell"
	case "gym.class.reminder":
		data["member"] = m
	default:
		data["member"] = m
		data["booking_id"] = bkg
		if t == "gym.booking.cancelled" && g.rng.IntN(2) == 0 {
			data["reason"] = "Cancelled by member"
		}
	}
	env := map[string]any{
		"specversion": "1.0", "id": id, "source": "booking-service", "type": t,
		"time": g.now().UTC().Format(time.RFC3339Nano), "subject": "class/" + c.ID,
		"datacontenttype": "application/json", "data": data,
	}
	b, err := json.Marshal(env)
	if err != nil {
		panic(err) // only plain data above; cannot fail
	}
	return Event{ID: id, Type: t, Key: []byte(c.ID), Value: b}
}

// memberIndex returns the index of the member with id, adding one.
func (g *Generator) memberIndex(id string) int {
	for i, m := range g.members {
		if m.ID == id {
			return i
		}
	}
	p := g.person("mem", len(g.members))
	p.ID = id
	g.members = append(g.members, p)
	return len(g.members) - 1
}
