package dlq

import (
	"encoding/json"
	"time"

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
	perReason  map[string]int
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

// NewSummary returns an empty summary keeping up to samples samples, at
// most two per reason, so one flood does not hide the rest.
func NewSummary(samples int) *Summary {
	return &Summary{ByReason: map[string]int{}, ByClass: map[string]int{}, ByChannel: map[string]int{}, ByStage: map[string]int{},
		maxSamples: samples, perReason: map[string]int{}, Samples: []Sample{}}
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
	if len(s.Samples) >= s.maxSamples || s.perReason[e.Reason] >= 2 {
		return
	}
	s.perReason[e.Reason]++
	smp := Sample{Partition: e.Partition, Offset: e.Offset, Reason: e.Reason, Class: e.Class, Stage: e.Stage, Channel: e.Channel,
		Attempts: e.Attempts, LastFailure: e.LastFailure, EventID: e.EventID, NotificationID: e.NotificationID, RecipientID: e.RecipientID, Error: e.Error}
	if e.Stage != "dispatcher" {
		if to := notificationTo(e.Value); to != "" {
			smp.To = mask(e.Stage, to)
		}
	} else if e.EventID == "" {
		var ev struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(e.Value, &ev) == nil && len(ev.ID) <= 128 {
			smp.EventID = ev.ID
		}
	}
	s.Samples = append(s.Samples, smp)
}

// AddMalformed counts a record that Decode refused.
func (s *Summary) AddMalformed(partition int, offset int64, err error) {
	s.Total++
	s.Malformed++
	if len(s.Samples) < s.maxSamples && s.perReason["malformed"] < 2 {
		s.perReason["malformed"]++
		s.Samples = append(s.Samples, Sample{Partition: partition, Offset: offset, Problem: err.Error()})
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
