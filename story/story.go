// Package story assembles one booking event's whole story across roles —
// the event record, every notification made from it, retries, dead
// letters, each notification's final state and the provider's delivery
// receipt — from Kafka (read without a consumer group), the idempotency
// store and the receipts store. herald trace prints it.
package story

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/dispatcher"
	"github.com/gymhq/herald/dlq"
	"github.com/gymhq/herald/kafkarun"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/receipts"
	"github.com/gymhq/herald/schedule"
	"github.com/gymhq/herald/topics"
)

// Sources is where an event's Story is read from.
type Sources struct {
	Scan        kafkarun.ScanConfig
	EventsTopic string
	Store       dedupe.Store // nil: final states unknown
	// receipts, when set, say what became of a sent notification at the
	// provider (delivered, undelivered with its code).
	Receipts receipts.Store
}

// Story is what herald trace reports. Addresses are masked; message bodies
// are never read.
type Story struct {
	EventID       string     `json:"event_id"`
	Since         time.Time  `json:"since"`
	Records       []Record   `json:"records"`
	Notifications []Delivery `json:"notifications"`
	StoreChecked  bool       `json:"store_checked"`
	// Cancels counts the cancellation records this event wrote (cancel_on
	// of scheduled notifications).
	Cancels int `json:"cancels,omitempty"`
	// others are other events' cancellations.
	others []Record
}

// Record is one Kafka record about the event.
type Record struct {
	Time           time.Time  `json:"time"`
	Kind           string     `json:"kind"` // event, notification, retry, dead_letter
	Topic          string     `json:"topic"`
	Partition      int        `json:"partition"`
	Offset         int64      `json:"offset"`
	EventType      string     `json:"event_type,omitempty"`
	NotificationID string     `json:"notification_id,omitempty"`
	Channel        string     `json:"channel,omitempty"`
	Template       string     `json:"template,omitempty"`
	RecipientID    string     `json:"recipient_id,omitempty"`
	To             string     `json:"to,omitempty"` // masked
	Attempt        int        `json:"attempt,omitempty"`
	NotBefore      *time.Time `json:"not_before,omitempty"`
	Stage          string     `json:"stage,omitempty"`
	// Quoted marks a dead letter found only because its value quotes the
	// event's id: it carries no event id of its own (it could not be read
	// as one event: several events in one record, a truncated one), so it
	// may be about another event that names this one, or hold this one
	// among others.
	Quoted bool   `json:"quoted,omitempty"`
	Class  string `json:"class,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Error is a dead letter's error message (its herald-error header).
	Error string `json:"error,omitempty"`
	// DueAt and Deferred are a notification's wait in the scheduler:
	// until when, and why (schedule, quiet_hours, cap, retry).
	DueAt    *time.Time `json:"due_at,omitempty"`
	Deferred string     `json:"deferred,omitempty"`
	// keys are a schedule record's cancel keys, or a cancel record's;
	// eventTime is its event's (schedule.Record.EventTime).
	keys      []string
	eventTime time.Time
	// replaces marks a cancel record that replaced what earlier events
	// scheduled (schedule.HeaderReplace).
	replaces bool
	// entry is a schedule or done record's entry id: one per deferral of a
	// notification (a retry is deferred once per attempt).
	entry string
}

// Delivery is one notification's outcome.
type Delivery struct {
	NotificationID    string `json:"notification_id"`
	Channel           string `json:"channel"`
	Template          string `json:"template"`
	RecipientID       string `json:"recipient_id"`
	To                string `json:"to"` // masked
	State             string `json:"state"`
	ProviderMessageID string `json:"provider_message_id,omitempty"`
	Reason            string `json:"reason,omitempty"`
	// Receipt is the provider's latest word after accepting it
	// (delivered, undelivered, …), when it reports one.
	Receipt     string `json:"receipt,omitempty"`
	ReceiptCode string `json:"receipt_code,omitempty"`
	Verdict     string `json:"verdict"`
}

// Trace gathers id's Story: it scans the events topic for the event,
// the channel and retry topics for its notifications (by the
// herald-event-id header the dispatcher sets), and the DLQ for dead
// letters, then asks the idempotency store for each notification's state.
func Trace(ctx context.Context, src Sources, id string) (*Story, error) {
	st := &Story{EventID: id, Since: src.Scan.Since.UTC()}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
	)
	add := func(r Record) {
		mu.Lock()
		st.Records = append(st.Records, r)
		mu.Unlock()
	}
	scan := func(topic string, match func(*queue.Message) (Record, bool)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := kafkarun.Scan(ctx, src.Scan, topic, func(m *queue.Message) error {
				if r, ok := match(m); ok {
					r.Topic, r.Partition, r.Offset, r.Time = m.Topic, m.Partition, m.Offset, m.Time.UTC()
					add(r)
				}
				return nil
			})
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	idBytes := []byte(id)
	idJSON := jsonString(id) // quoted, as it stands in a JSON value
	scan(src.EventsTopic, func(m *queue.Message) (Record, bool) {
		if !bytes.Contains(m.Value, idBytes) {
			return Record{}, false
		}
		var ev struct{ ID, Type string }
		if json.Unmarshal(m.Value, &ev) != nil || ev.ID != id {
			return Record{}, false
		}
		return Record{Kind: "event", EventType: ev.Type}, true
	})
	for _, ch := range notification.Known() {
		for _, t := range []struct{ topic, kind string }{{topics.Channel(ch), "notification"}, {topics.Retry(ch), "retry"}} {
			scan(t.topic, func(m *queue.Message) (Record, bool) {
				if !fromEvent(m, id, idBytes) {
					return Record{}, false
				}
				r := Record{Kind: t.kind, Channel: string(ch)}
				fillNotification(&r, m.Value)
				return r, true
			})
		}
	}
	scan(topics.Schedule, func(m *queue.Message) (Record, bool) { return scheduleRecord(m, id) })
	scan(topics.DLQ, func(m *queue.Message) (Record, bool) {
		if !deadLetterOf(m, id, idJSON) {
			return Record{}, false
		}
		r := Record{Kind: "dead_letter", Stage: string(m.Header(dlq.HeaderStage)), Channel: string(m.Header(dlq.HeaderChannel)),
			Class: string(m.Header(dlq.HeaderClass)), Reason: string(m.Header(dlq.HeaderReason)), Error: string(m.Header(dlq.HeaderError)),
			Quoted: m.Header(dlq.HeaderEventID) == nil}
		switch rid := string(m.Header(dlq.HeaderRecipientID)); {
		case rid != "":
			// A recipient's address refused by the dispatcher: no
			// notification was made (its id would come from the address).
			r.RecipientID = rid
			var ref dlq.Refused
			if json.Unmarshal(m.Value, &ref) == nil {
				r.Template = ref.Template
			}
		case r.Stage != "dispatcher":
			fillNotification(&r, m.Value)
		}
		if a, err := strconv.Atoi(string(m.Header(dlq.HeaderAttempts))); err == nil && r.Attempt == 0 {
			r.Attempt = a
		}
		return r, true
	})
	wg.Wait()
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	// Other events' cancellations are not this event's records; decide
	// matches them against its schedules' keys.
	kept := st.Records[:0]
	for _, r := range st.Records {
		if r.Kind == "cancel" && r.Reason != id {
			st.others = append(st.others, r)
			continue
		}
		kept = append(kept, r)
	}
	st.Records = kept
	sortRecords(st.Records)
	st.Records = onceEachWait(st.Records)
	if err := st.decide(ctx, src.Store, src.Receipts); err != nil {
		return nil, err
	}
	return st, nil
}

// sortRecords orders records by time, then kind, then where they are
// (topic, partition, offset), so that a story reads the same every time:
// the topics are read at once, and records of one millisecond came out in
// the order their reads finished (an outside tester's diff of two traces).
func sortRecords(rs []Record) {
	sort.Slice(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		switch {
		case !a.Time.Equal(b.Time):
			return a.Time.Before(b.Time)
		case a.Kind != b.Kind:
			if oa, ob := kindOrder[a.Kind], kindOrder[b.Kind]; oa != ob {
				return oa < ob
			}
			return a.Kind < b.Kind
		case a.Topic != b.Topic:
			return a.Topic < b.Topic
		case a.Partition != b.Partition:
			return a.Partition < b.Partition
		}
		return a.Offset < b.Offset
	})
}

var kindOrder = map[string]int{"event": 0, "deferred": 1, "cancel": 2, "fired": 3, "notification": 4, "retry": 5, "dead_letter": 6}

// fromEvent reports whether a channel or retry record belongs to event
// id: by the herald-event-id header herald's writers set, or, for a record
// without one (written by hand with kcat, or by another tool), by the
// event id in its value.
func fromEvent(m *queue.Message, id string, idBytes []byte) bool {
	if h := m.Header(dispatcher.HeaderEventID); h != nil {
		return string(h) == id
	}
	if !bytes.Contains(m.Value, idBytes) {
		return false
	}
	n, err := notification.Parse(m.Value)
	return err == nil && n.EventID == id
}

// jsonString is s as a JSON string, quotes included, without the HTML
// escaping json.Marshal applies (an id may hold & < >, which producers
// write as they are).
func jsonString(s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// deadLetterOf reports whether a DLQ record belongs to event id (idJSON is
// the id as a JSON string, quotes included): by the
// herald-event-id header herald's writers set when they know the id; a
// record without one (an event too broken to read an id from) by the id
// as a whole JSON string in its value. Not by the id anywhere in the value:
// evt_1 is the start of evt_10, and a record of another event may quote
// this one's id in a field.
func deadLetterOf(m *queue.Message, id string, idJSON []byte) bool {
	if h := m.Header(dlq.HeaderEventID); h != nil {
		return string(h) == id
	}
	return bytes.Contains(m.Value, idJSON)
}

// unsent are the failure reasons of idempotency keys whose notification
// ended without a send, by design rather than by a failure: the state
// herald trace shows, and why.
var unsent = map[string]struct{ state, why string }{
	obs.OutcomeSuppressed: {"suppressed", "the address is on the suppression list (herald suppressions list)"},
	obs.OutcomeCapped:     {"capped", "over its category's frequency cap, whose policy is drop (categories.yaml)"},
	obs.ReasonOptedOut:    {"cancelled", "the person turned it off in their preferences after it was planned"},
	obs.OutcomeExpired:    {"expired", "its time had passed when a worker took it (routing.yaml expires:, or a reminder's class start)"},
}

// fillNotification copies what tooling may show of an encoded notification.
func fillNotification(r *Record, value []byte) {
	n, err := notification.Decode(value)
	if err != nil {
		return // a garbled record still shows where it is
	}
	r.NotificationID, r.Template, r.Attempt, r.RecipientID = n.ID, n.Template, n.Attempt, n.RecipientID
	r.Channel = string(n.Channel)
	r.To = obs.MaskAddress(string(n.Channel), n.To)
	if !n.NotBefore.IsZero() {
		nb := n.NotBefore.UTC()
		r.NotBefore = &nb
	}
	r.Deferred = n.Deferred
}

// decide fills Notifications: one per notification id seen, with the
// store's state and a verdict a person can act on.
func (st *Story) decide(ctx context.Context, store dedupe.Store, rs receipts.Store) error {
	byID := map[string]*Delivery{}
	var order []string
	lastRetry := map[string]Record{}
	dead := map[string]Record{}
	waits := map[string]Record{} // the latest schedule record of each notification
	fired := map[string]Record{}
	cancelledBy := map[string][]Record{} // cancel key → the cancel records
	var cancelRecords []Record
	var refused []Delivery
	for _, r := range st.others {
		for _, k := range r.keys {
			cancelledBy[k] = append(cancelledBy[k], r)
		}
	}
	for _, r := range st.Records {
		switch r.Kind {
		case "cancel":
			for _, k := range r.keys {
				cancelledBy[k] = append(cancelledBy[k], r)
			}
			if r.Reason == st.EventID {
				cancelRecords = append(cancelRecords, r)
			}
			continue
		case "fired":
			fired[r.entry] = r // a retry's earlier deferral fired; its latest may not have
			continue
		case "deferred":
			waits[r.NotificationID] = r
		}
		if r.Kind == "dead_letter" && r.NotificationID == "" && r.RecipientID != "" {
			refused = append(refused, Delivery{Channel: r.Channel, Template: r.Template, RecipientID: r.RecipientID,
				To: "(refused)", State: "refused", Reason: r.Reason,
				Verdict: "not sent: the dispatcher refused this recipient's message (" + refusal(r) + "); correct it at the source (the person's address, or the event's time) and publish the event again"})
			continue
		}
		if r.NotificationID == "" {
			continue
		}
		if byID[r.NotificationID] == nil {
			byID[r.NotificationID] = &Delivery{NotificationID: r.NotificationID, Channel: r.Channel, Template: r.Template, RecipientID: r.RecipientID, To: r.To}
			order = append(order, r.NotificationID)
		}
		switch r.Kind {
		case "retry":
			lastRetry[r.NotificationID] = r
		case "dead_letter":
			dead[r.NotificationID] = r
		}
	}
	st.StoreChecked = store != nil
	for _, nid := range order {
		d := byID[nid]
		var c dedupe.Claim
		if store != nil {
			var err error
			if c, err = store.Get(ctx, nid); err != nil {
				return fmt.Errorf("idempotency store: %w", err)
			}
		}
		w, waited := waits[nid]
		var by *Record
		if waited {
		keys:
			for _, k := range w.keys {
				for _, c := range cancelledBy[k] {
					if schedule.Covers(c.eventTime, w.eventTime) { // not a cancellation older than its event
						by = &c
						break keys
					}
				}
			}
		}
		_, wasFired := fired[w.entry] // the latest deferral's, when there is one
		switch {
		case waited && by != nil && !wasFired && c.State != dedupe.StateSent:
			d.State, d.Reason = "cancelled", "cancelled"
			how := "cancelled"
			if by.replaces {
				how = "replaced"
			}
			d.Verdict = fmt.Sprintf("not sent: %s by event %s at %s, before it was due (%s)", how, by.Reason, by.Time.Format(time.RFC3339), w.DueAt.Format(time.RFC3339))
		case waited && !wasFired && c.State == "":
			d.State = "deferred"
			d.Verdict = fmt.Sprintf("not sent yet: the scheduler holds it until %s (%s)", w.DueAt.Format(time.RFC3339), w.Deferred)
		case store == nil:
			d.State = "unknown"
			d.Verdict = "final state not checked (no HERALD_REDIS_URL)"
		case c.State == dedupe.StateSent:
			d.State, d.ProviderMessageID = "sent", c.ProviderMessageID
			d.Verdict = "delivered: the provider accepted it as " + c.ProviderMessageID
			if rs != nil {
				r, ok, err := rs.Get(ctx, nid)
				if err != nil {
					return fmt.Errorf("delivery receipts: %w", err)
				}
				if ok && r.Status != receipts.StatusAccepted {
					d.Receipt, d.ReceiptCode = string(r.Status), r.Code
					d.Verdict = "accepted as " + c.ProviderMessageID + "; the provider reports it " + string(r.Status)
					if r.Code != "" {
						d.Verdict += " (" + r.Code
						if r.Detail != "" {
							d.Verdict += ": " + r.Detail
						}
						d.Verdict += ")"
					}
					if !r.At.IsZero() {
						d.Verdict += " at " + r.At.UTC().Format(time.RFC3339)
					}
				}
			}
		case c.State == dedupe.StateFailed:
			d.Reason = c.Reason
			if u, ok := unsent[c.Reason]; ok {
				d.State, d.Verdict = u.state, "not sent: "+u.why
			} else {
				d.State = "failed"
				d.Verdict = "not delivered: failed permanently (" + c.Reason + "); see the dead letter"
			}
		case c.State == dedupe.StateInFlight:
			d.State = "in_flight"
			d.Verdict = fmt.Sprintf("being sent now by %s (lease %s left)", c.Owner, c.LeaseLeft.Round(time.Millisecond))
		default:
			d.State = "pending"
			if r, ok := dead[nid]; ok {
				d.Reason = r.Reason
				d.Verdict = "not delivered: dead-lettered (" + r.Reason + ")"
			} else if r, ok := lastRetry[nid]; ok && r.NotBefore != nil {
				d.Verdict = fmt.Sprintf("not delivered yet: retry %d waits until %s", r.Attempt, r.NotBefore.Format(time.RFC3339))
			} else {
				d.Verdict = "not delivered yet: queued, not yet handled (or its key outlived the retention window)"
			}
		}
		st.Notifications = append(st.Notifications, *d)
	}
	st.Notifications = append(st.Notifications, refused...)
	if len(cancelRecords) > 0 {
		st.Cancels = len(cancelRecords)
	}
	return nil
}

func (st *Story) Print(w io.Writer) {
	if len(st.Records) == 0 {
		fmt.Fprintf(w, "event %s: nothing found since %s (widen --since?)\n", st.EventID, st.Since.Format(time.RFC3339))
		return
	}
	fmt.Fprintf(w, "event %s, records since %s\n\n", st.EventID, st.Since.Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tKIND\tWHERE\tCHANNEL\tTEMPLATE\tRECIPIENT\tTO\tATTEMPT\tDETAIL")
	// The time of day, unless the records span more than one UTC day: a
	// reminder booked weeks ahead fires on another day than its event.
	layout := "15:04:05.000"
	if first, last := st.Records[0].Time.UTC(), st.Records[len(st.Records)-1].Time.UTC(); first.YearDay() != last.YearDay() || first.Year() != last.Year() {
		layout = "2006-01-02 15:04:05.000"
	}
	for _, r := range st.Records {
		detail := r.EventType
		switch {
		case r.Kind == "retry" && r.NotBefore != nil:
			detail = "not before " + r.NotBefore.Format(time.RFC3339)
		case r.Kind == "dead_letter":
			detail = r.Class + " " + r.Reason + " (stage " + r.Stage + ")"
			if r.Quoted {
				detail += "; a record that could not be read as one event and quotes this id"
			}
		case r.Kind == "deferred" && r.DueAt != nil:
			detail = "held until " + r.DueAt.Format(time.RFC3339) + " (" + r.Deferred + ")"
		case r.Kind == "cancel":
			detail = fmt.Sprintf("withdraws schedules under %d key(s)", len(r.keys))
			if r.replaces {
				detail = fmt.Sprintf("replaces what earlier events scheduled under %d key(s)", len(r.keys))
			}
		case r.Kind == "fired":
			detail = "due; published to its channel"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s/%d@%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Time.Format(layout), r.Kind, r.Topic, r.Partition, r.Offset,
			dash(r.Channel), dash(r.Template), dash(r.RecipientID), dash(r.To), dash(strconv.Itoa(r.Attempt)), detail)
	}
	tw.Flush()
	if len(st.Notifications) == 0 {
		fmt.Fprintln(w, "\nno notifications found for it")
		for _, r := range st.Records {
			// The event's own dead letter (no recipient: not a refusal):
			// the dispatcher could not use it at all, and says why.
			if r.Kind != "dead_letter" || r.RecipientID != "" || r.NotificationID != "" {
				continue
			}
			if !r.Quoted {
				fmt.Fprintf(w, "it was dead-lettered at stage %s before any notification was planned: %s\n"+
					"herald dlq inspect shows the record; docs/operations.md (HeraldDLQRate) says what to do for each reason\n",
					dash(r.Stage), deadLetterError(r))
				return
			}
			// Found by quoting the id: a record that could not be read as
			// one event, which may be this one.
			fmt.Fprintf(w, "a dead letter at stage %s quotes its id, a record that could not be read as one event: %s;\n"+
				"if that record is this event, it was never planned; herald dlq inspect shows it\n", dash(r.Stage), deadLetterError(r))
		}
		for _, r := range st.Records {
			if r.Kind == "event" {
				fmt.Fprintf(w, "the dispatcher read it and planned none: either type %s has no folder in the template set,\n"+
					"so it was skipped (herald_events_total{outcome=\"unknown_type\"}), or no rule's recipients are\n"+
					"in it, or every recipient has its category turned off (herald templates render shows what it plans)\n", r.EventType)
				break
			}
		}
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NOTIFICATION\tCHANNEL\tRECIPIENT\tTO\tSTATE\tVERDICT")
	for _, d := range st.Notifications {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", shortID(d.NotificationID), d.Channel, d.RecipientID, d.To, d.State, d.Verdict)
	}
	tw.Flush()
}

func dash(s string) string {
	if s == "" || s == "0" {
		return "-"
	}
	return s
}

func shortID(id string) string {
	if id == "" {
		return "-"
	}
	if len(id) > 16 {
		return id[:16]
	}
	return id
}

// deadLetterError is a dead letter's error as its herald-error header
// gives it ("decode (poison): event is not valid UTF-8"), which names its
// reason and class already; its reason and class when it has none.
func deadLetterError(r Record) string {
	if r.Error != "" {
		return r.Error
	}
	return r.Reason + " (" + r.Class + ")"
}

// refusal is what a verdict says of a dispatcher's refusal: its reason
// and, when the dead letter carries it, its error ("scheduled for …, more
// than 366 days ahead"), which the reason alone (invalid) does not say.
func refusal(r Record) string {
	if r.Error == "" {
		return r.Reason
	}
	return r.Reason + ": " + r.Error
}

// scheduleRecord is what a record of the schedule topic tells of event id's
// story: a wait of one of its notifications, a firing, or a cancellation
// (of any event: decide matches the keys).
func scheduleRecord(m *queue.Message, id string) (Record, bool) {
	r, err := schedule.Decode(m.Value)
	if err != nil {
		return Record{}, false
	}
	switch r.Kind {
	case schedule.KindSchedule:
		if r.EventID != id {
			return Record{}, false
		}
		rec := Record{Kind: "deferred", keys: r.Keys, entry: r.ID}
		if len(r.Keys) > 0 {
			rec.eventTime = r.EventTime()
		}
		fillNotification(&rec, r.Notification)
		due := r.Due.UTC()
		rec.DueAt = &due
		return rec, true
	case schedule.KindDone:
		return Record{Kind: "fired", NotificationID: schedule.NotificationID(r.ID), entry: r.ID}, r.EventID == id
	case schedule.KindCancel:
		// Any event's cancellation may withdraw this one's schedules:
		// decide matches the keys.
		return Record{Kind: "cancel", keys: r.Keys, Reason: r.EventID, eventTime: r.EventTime(), replaces: m.Header(schedule.HeaderReplace) != nil}, true
	}
	return Record{}, false
}

// onceEachWait keeps the first of a wait's schedule records, in time
// order: the scheduler writes a record again when the schedule topic would
// drop it before it is due (schedule.HeaderRefresh), and each copy is the
// same wait, not another. The first still on the topic is kept, whichever
// it is: the original ages out before a wait longer than the retention
// ends.
func onceEachWait(rs []Record) []Record {
	seen := map[string]bool{}
	kept := rs[:0]
	for _, r := range rs {
		if r.Kind == "deferred" && r.entry != "" {
			if seen[r.entry] {
				continue
			}
			seen[r.entry] = true
		}
		kept = append(kept, r)
	}
	return kept
}
