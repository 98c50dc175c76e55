package dlq

import (
	"cmp"
	"encoding/json"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/gymhq/herald/events"
	"github.com/gymhq/herald/notification"
)

// Summary is what `herald dlq inspect` reports: counts by reason, class,
// channel and stage, the failure time range, and a few samples with masked
// addresses. It never holds a message body or template data.
type Summary struct {
	Total     int            `json:"total"`
	Malformed int            `json:"malformed"`
	ByReason  map[string]int `json:"by_reason"`
	ByClass   map[string]int `json:"by_class"`
	ByChannel map[string]int `json:"by_channel"`
	ByStage   map[string]int `json:"by_stage"`
	Oldest    time.Time      `json:"oldest_failure,omitzero"`
	Newest    time.Time      `json:"newest_failure,omitzero"`
	Samples   []Sample       `json:"samples"`

	maxSamples int
	// candidates are, per reason, the samples with the lowest partition
	// and offset seen so far (at most two); Finish picks from them.
	candidates map[string][]Sample
}

// Sample is one DLQ record, safe to print.
type Sample struct {
	Partition      int       `json:"partition"`
	Offset         int64     `json:"offset"`
	Reason         string    `json:"reason"`
	Class          string    `json:"class"`
	Stage          string    `json:"stage"`
	Channel        string    `json:"channel,omitempty"`
	Attempts       int       `json:"attempts"`
	LastFailure    time.Time `json:"last_failure"`
	EventID        string    `json:"event_id,omitempty"`
	NotificationID string    `json:"notification_id,omitempty"`
	RecipientID    string    `json:"recipient_id,omitempty"` // a per-recipient refusal: inspect only, never replayed
	To             string    `json:"to,omitempty"`           // masked
	Error          string    `json:"error,omitempty"`
	Problem        string    `json:"problem,omitempty"` // why a malformed record could not be read
}

// NewSummary returns an empty summary keeping up to samples samples, one
// per reason a round, so one flood does not hide the rest. Call Finish
// once every record is added.
func NewSummary(samples int) *Summary {
	return &Summary{ByReason: map[string]int{}, ByClass: map[string]int{}, ByChannel: map[string]int{}, ByStage: map[string]int{},
		maxSamples: max(samples, 0), candidates: map[string][]Sample{}, Samples: []Sample{}}
}

// Finish sets Samples from what was added: one per reason first, then a
// second per reason, and so on up to the limit, in partition and offset
// order. Each
// reason's samples are its lowest partitions and offsets, so the same
// topic gives the same samples whatever order its partitions were read in.
func (s *Summary) Finish() {
	reasons := make([]string, 0, len(s.candidates))
	for r := range s.candidates {
		reasons = append(reasons, r)
	}
	slices.Sort(reasons)
	s.Samples = []Sample{}
	for round := 0; len(s.Samples) < s.maxSamples; round++ {
		added := false
		for _, r := range reasons {
			if c := s.candidates[r]; round < len(c) && len(s.Samples) < s.maxSamples {
				s.Samples = append(s.Samples, c[round])
				added = true
			}
		}
		if !added {
			break
		}
	}
	slices.SortFunc(s.Samples, byPosition)
}

func byPosition(a, b Sample) int {
	return cmp.Or(cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
}

// keep offers smp as one of its reason's samples; it is kept when it is
// among the reason's maxSamples lowest positions.
func (s *Summary) keep(reason string, smp Sample) {
	c := s.candidates[reason]
	i, _ := slices.BinarySearchFunc(c, smp, byPosition) // c is in order: one insertion, not a sort
	c = slices.Insert(c, i, smp)
	s.candidates[reason] = c[:min(len(c), s.maxSamples)]
}

// wanted reports whether a record at partition/offset would be kept as a
// sample of reason, before the work of building it.
func (s *Summary) wanted(reason string, partition int, offset int64) bool {
	if s.maxSamples == 0 {
		return false
	}
	c := s.candidates[reason]
	return len(c) < s.maxSamples || byPosition(Sample{Partition: partition, Offset: offset}, c[len(c)-1]) < 0
}

// Add counts one decoded record. mask masks an address for its channel.
func (s *Summary) Add(e *Entry, mask func(channel, to string) string) {
	s.Total++
	s.ByReason[e.Reason]++
	s.ByClass[e.Class]++
	ch := e.Channel
	if ch == "" {
		ch = "-"
	}
	s.ByChannel[ch]++
	s.ByStage[e.Stage]++
	if s.Oldest.IsZero() || e.LastFailure.Before(s.Oldest) {
		s.Oldest = e.LastFailure
	}
	if e.LastFailure.After(s.Newest) {
		s.Newest = e.LastFailure
	}
	if !s.wanted(e.Reason, e.Partition, e.Offset) {
		return
	}
	smp := Sample{Partition: e.Partition, Offset: e.Offset, Reason: e.Reason, Class: e.Class, Stage: e.Stage, Channel: e.Channel,
		Attempts: e.Attempts, LastFailure: e.LastFailure, EventID: e.EventID, NotificationID: e.NotificationID, RecipientID: e.RecipientID, Error: e.Error}
	if e.Stage != "dispatcher" {
		if to := notificationTo(e.Value); to != "" {
			smp.To = mask(e.Stage, to)
		}
	} else if e.EventID == "" {
		smp.EventID = EventIDOf(e.Value) // a record from before the dispatcher set the header
	}
	s.keep(e.Reason, smp)
}

// malformedReason files malformed records' samples apart from every
// reason a herald record can carry.
const malformedReason = "(malformed)"

// AddMalformed counts a record that Decode refused.
func (s *Summary) AddMalformed(partition int, offset int64, err error) {
	s.Total++
	s.Malformed++
	if s.wanted(malformedReason, partition, offset) {
		s.keep(malformedReason, Sample{Partition: partition, Offset: offset, Problem: err.Error()})
	}
}

// notificationTo is the address of a dead-lettered notification, in the
// binary form or the JSON one, valid or not (a refused one shows where it
// was going too); "" when the value does not parse, e.g. cut short.
func notificationTo(v []byte) string {
	if n, err := notification.Parse(v); err == nil {
		return n.To
	}
	var n struct {
		To string `json:"to"`
	}
	if json.Unmarshal(v, &n) == nil {
		return n.To
	}
	return ""
}

// EventIDOf is the id of a dead-lettered event read from its value: the
// value's JSON "id" when it is a string within events.MaxIDBytes, "" when
// the value does not decode or has none. The dispatcher sets it as a dead
// letter's herald-event-id; inspect reads it from records without one.
func EventIDOf(value []byte) string {
	var ev struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(value, &ev) != nil || len(ev.ID) > events.MaxIDBytes || !utf8.ValidString(ev.ID) {
		return ""
	}
	return ev.ID
}
