package story

import (
	"bytes"
	"context"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gymhq/herald/dedupe"
	"github.com/gymhq/herald/dlq"
	"github.com/gymhq/herald/obs"
	"github.com/gymhq/herald/queue"
	"github.com/gymhq/herald/schedule"
)

// Without the idempotency store the story says so instead of guessing,
// refused recipients are listed apart, and Print shows records in order.
func TestDecideAndPrint(t *testing.T) {
	at := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	st := &Story{EventID: "evt_1", Since: at.Add(-time.Hour), Records: []Record{
		{Time: at, Kind: "event", Topic: "gym.bookings.v1", EventType: "gym.booking.confirmed"},
		{Time: at, Kind: "notification", Topic: "herald.sms.v1", NotificationID: "ntf_a", Channel: "sms", RecipientID: "mem_1", To: "+44******23"},
		{Time: at, Kind: "dead_letter", Topic: "herald.dlq.v1", Channel: "sms", RecipientID: "mem_2", Reason: "invalid_address", Stage: "dispatcher"},
	}}
	if err := st.decide(context.Background(), nil, nil); err != nil {
		t.Fatal(err)
	}
	if len(st.Notifications) != 2 || st.Notifications[0].State != "unknown" || st.Notifications[1].State != "refused" {
		t.Fatalf("notifications %+v", st.Notifications)
	}
	var b bytes.Buffer
	st.Print(&b)
	out := b.String()
	for _, want := range []string{"event evt_1", "gym.booking.confirmed", "ntf_a", "final state not checked", "refused"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	var empty bytes.Buffer
	(&Story{EventID: "evt_2", Since: at}).Print(&empty)
	if !strings.Contains(empty.String(), "nothing found") {
		t.Errorf("empty story: %s", empty.String())
	}
}

// A refusal's verdict says why, not only its reason: "invalid" covers an
// address the dispatcher refused and a message scheduled too far ahead
// (an outside tester's trace of a class 400 days out told them to check
// the person's address).
func TestRefusalVerdictSaysWhy(t *testing.T) {
	at := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	const why = "scheduled for 2028-01-10T21:59:00Z, more than 366 days ahead"
	st := &Story{EventID: "evt_1", Since: at.Add(-time.Hour), Records: []Record{
		{Time: at, Kind: "dead_letter", Topic: "herald.dlq.v1", Channel: "push", RecipientID: "mem_2", Reason: "invalid", Stage: "dispatcher", Error: why},
	}}
	if err := st.decide(context.Background(), nil, nil); err != nil {
		t.Fatal(err)
	}
	if len(st.Notifications) != 1 || !strings.Contains(st.Notifications[0].Verdict, "(invalid: "+why+")") {
		t.Fatalf("notifications %+v, want a verdict quoting %q", st.Notifications, why)
	}
}

// A notification a worker found past its expiry is told as such, not as a
// permanent failure with a dead letter to look for.
func TestExpiredIsToldApart(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	store := dedupe.NewMemory(dedupe.Options{})
	if _, err := store.Claim(ctx, "ntf_a", "w#1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := store.MarkFailed(ctx, "ntf_a", "w#1", obs.OutcomeExpired); err != nil {
		t.Fatal(err)
	}
	st := &Story{EventID: "evt_1", Since: at.Add(-time.Hour), Records: []Record{
		{Time: at, Kind: "notification", Topic: "herald.push.v1", NotificationID: "ntf_a", Channel: "push", RecipientID: "mem_1"},
	}}
	if err := st.decide(ctx, store, nil); err != nil {
		t.Fatal(err)
	}
	if d := st.Notifications[0]; d.State != "expired" || !strings.Contains(d.Verdict, "not sent: its time had passed") {
		t.Fatalf("delivery %+v", d)
	}
}

// A dead letter is this event's by its herald-event-id header, or, without
// one, by the id as a whole JSON string in its value: herald trace listed
// other events' dead letters whose id began with this one's, or whose value
// merely mentioned it (an outside tester's find).
func TestDeadLetterOf(t *testing.T) {
	id := "evt_dt17_in"
	idJSON := jsonString(id)
	hdr := func(v string) []queue.Header { return []queue.Header{{Key: dlq.HeaderEventID, Value: []byte(v)}} }
	for _, tc := range []struct {
		name string
		m    queue.Message
		want bool
	}{
		{"its header", queue.Message{Headers: hdr(id), Value: []byte(`{}`)}, true},
		{"another event's header, this id in the value", queue.Message{Headers: hdr("evt_dt17_render"), Value: []byte(`{"note":"evt_dt17_in"}`)}, false},
		{"no header, its id", queue.Message{Value: []byte(`{"id":"evt_dt17_in","type":"x"}`)}, true},
		{"no header, a longer id", queue.Message{Value: []byte(`{"id":"evt_dt17_inv","type":"x"}`)}, false},
		{"no header, garbage mentioning it unquoted", queue.Message{Value: []byte(`not json evt_dt17_in`)}, false},
	} {
		if got := deadLetterOf(&tc.m, id, idJSON); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A notification retried through the scheduler is deferred once per
// attempt. With the second attempt's deferral fired and the third's still
// held, the story said "retry 2 waits until" a time already past: the
// second's done mark was taken for the latest deferral's (an outside
// tester's find). It says the scheduler holds the third.
func TestLatestDeferralDecides(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	store := dedupe.NewMemory(dedupe.Options{})
	due2, due3 := at.Add(10*time.Second), at.Add(40*time.Second)
	st := &Story{EventID: "evt_1", Since: at.Add(-time.Hour), Records: []Record{
		{Time: at, Kind: "notification", Topic: "herald.webhook.v1", NotificationID: "ntf_a", Channel: "webhook", RecipientID: "mem_1"},
		{Time: at.Add(time.Second), Kind: "deferred", NotificationID: "ntf_a", Channel: "webhook", Attempt: 1, DueAt: &due2, Deferred: "retry", entry: "ntf_a@1.1"},
		{Time: due2, Kind: "fired", NotificationID: "ntf_a", entry: "ntf_a@1.1"},
		{Time: due2, Kind: "retry", NotificationID: "ntf_a", Channel: "webhook", Attempt: 1, NotBefore: &due2},
		{Time: due2.Add(time.Second), Kind: "deferred", NotificationID: "ntf_a", Channel: "webhook", Attempt: 2, DueAt: &due3, Deferred: "retry", entry: "ntf_a@2.2"},
	}}
	if err := st.decide(ctx, store, nil); err != nil {
		t.Fatal(err)
	}
	if d := st.Notifications[0]; d.State != "deferred" || !strings.Contains(d.Verdict, due3.Format(time.RFC3339)) {
		t.Fatalf("delivery %+v, want deferred until %v", d, due3)
	}
}

// An id with & < > is found as producers write it: json.Marshal's HTML
// escaping (\u0026) missed it (a review's find).
func TestDeadLetterOfUnescapedID(t *testing.T) {
	id := "evt_a&b<c>"
	if !deadLetterOf(&queue.Message{Value: []byte(`{"id":"evt_a&b<c>"}`)}, id, jsonString(id)) {
		t.Error("an id with & < > not found in a dead letter without the header")
	}
}

// A booking's reminder scheduled after an earlier cancellation of the same
// key (the booking made again) is told as waiting, not as cancelled by the
// older event; one scheduled before it is cancelled.
func TestOlderCancellationDoesNotTellALaterSchedule(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	due := at.Add(48 * time.Hour)
	for _, tc := range []struct {
		scheduled time.Time
		want      string
	}{{at.Add(time.Hour), "deferred"}, {at.Add(-time.Hour), "cancelled"}, {time.Time{}, "cancelled"}} {
		st := &Story{EventID: "evt_rebook", Since: at.Add(-time.Hour),
			others: []Record{{Time: at, Kind: "cancel", keys: []string{"k"}, Reason: "evt_cancel", eventTime: at}},
			Records: []Record{{Time: at.Add(time.Hour), Kind: "deferred", NotificationID: "ntf_a", Channel: "sms", DueAt: &due,
				Deferred: "schedule", entry: "ntf_a@1.0", keys: []string{"k"}, eventTime: tc.scheduled}}}
		if err := st.decide(ctx, dedupe.NewMemory(dedupe.Options{}), nil); err != nil {
			t.Fatal(err)
		}
		if d := st.Notifications[0]; d.State != tc.want {
			t.Errorf("scheduled by an event at %v, cancelled at %v: %s (%s), want %s", tc.scheduled, at, d.State, d.Verdict, tc.want)
		}
	}
}

// A dead letter found only because it quotes the id (no event-id header:
// the outside tester's 817 KB record of 34 events) says so, and an event
// the dispatcher planned nothing for says why that can be (its tester
// read "no notifications found" for an unknown type and nothing more).
func TestQuotedDeadLetterAndNothingPlanned(t *testing.T) {
	at := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	st := &Story{EventID: "evt_1", Since: at.Add(-time.Hour), Records: []Record{
		{Time: at, Kind: "event", Topic: "gym.bookings.v1", EventType: "gym.locker.opened"},
		{Time: at, Kind: "dead_letter", Topic: "herald.dlq.v1", Stage: "dispatcher", Class: "poison", Reason: "decode", Quoted: true},
	}}
	if err := st.decide(context.Background(), nil, nil); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	st.Print(&b)
	for _, want := range []string{"could not be read as one event and quotes this id", "type gym.locker.opened has no folder in the template set",
		"if that record is this event, it was never planned"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
}

// The scheduler writes a schedule record again when the topic would drop
// it before it is due; the story lists the wait once, from the first
// record of it still on the topic (a second review's find: each copy was
// another "deferred … held until" line).
func TestACopiedWaitIsOneWait(t *testing.T) {
	at := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	due := at.Add(40 * 24 * time.Hour)
	wait := func(d time.Duration) Record {
		return Record{Time: at.Add(d), Kind: "deferred", NotificationID: "ntf_a", Channel: "push", DueAt: &due, Deferred: "schedule", entry: "ntf_a@x"}
	}
	other := wait(time.Hour)
	other.entry, other.NotificationID = "ntf_b@x", "ntf_b"
	got := onceEachWait([]Record{wait(0), other, wait(15 * 24 * time.Hour), wait(30 * 24 * time.Hour)})
	if len(got) != 2 || !got[0].Time.Equal(at) || got[1].NotificationID != "ntf_b" {
		t.Fatalf("records %+v, want ntf_a's first wait and ntf_b's", got)
	}
}

// Records of more than one day (a reminder fired weeks after its event)
// show their dates; those of one day, the time of day alone.
func TestPrintShowsDatesAcrossDays(t *testing.T) {
	at := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	printed := func(rs ...Record) string {
		var b bytes.Buffer
		(&Story{EventID: "evt_1", Since: at.Add(-time.Hour), Records: rs}).Print(&b)
		return b.String()
	}
	ev := Record{Time: at, Kind: "event", Topic: "gym.bookings.v1", EventType: "gym.booking.confirmed"}
	later := Record{Time: at.Add(40 * 24 * time.Hour), Kind: "fired", Topic: "herald.schedule.v1", NotificationID: "ntf_a"}
	if out := printed(ev, later); !strings.Contains(out, "2026-12-04 09:00:00.000") || !strings.Contains(out, "2027-01-13 09:00:00.000") {
		t.Errorf("records 40 days apart without their dates:\n%s", out)
	}
	if out := printed(ev); strings.Contains(out, "2026-12-04 09:00") || !strings.Contains(out, "09:00:00.000") {
		t.Errorf("records of one day:\n%s", out)
	}
}

// A reminder a later confirmation of its booking replaced (schedule:
// replace:, a moved class) is told as replaced by that event, and the
// replacing record says what it did, read from the records the
// dispatcher writes.
func TestReplacedReminderIsToldAsReplaced(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	due := at.Add(48 * time.Hour)
	r := schedule.ReplaceRecord("evt_move", at.Add(10*time.Minute), []string{"k"}, at.Add(10*time.Minute))
	m, err := schedule.Message(r)
	if err != nil {
		t.Fatal(err)
	}
	m.Headers = []queue.Header{{Key: schedule.HeaderReplace, Value: []byte("1")}}
	rec, ok := scheduleRecord(&m, "evt_book")
	if !ok || rec.Kind != "cancel" || !rec.replaces {
		t.Fatalf("the replace record read as %+v", rec)
	}
	rec.Time = at.Add(10 * time.Minute)
	st := &Story{EventID: "evt_book", Since: at.Add(-time.Hour), others: []Record{rec},
		Records: []Record{{Time: at, Kind: "deferred", NotificationID: "ntf_a", Channel: "push", DueAt: &due,
			Deferred: "schedule", entry: "ntf_a@1.0", keys: []string{"k"}, eventTime: at}}}
	if err := st.decide(ctx, dedupe.NewMemory(dedupe.Options{}), nil); err != nil {
		t.Fatal(err)
	}
	if d := st.Notifications[0]; d.State != "cancelled" || !strings.Contains(d.Verdict, "replaced by event evt_move") {
		t.Errorf("%s (%s), want cancelled, replaced by event evt_move", d.State, d.Verdict)
	}
	var out bytes.Buffer
	(&Story{EventID: "evt_move", Records: []Record{rec}}).Print(&out)
	if !strings.Contains(out.String(), "replaces what earlier events scheduled under 1 key(s)") {
		t.Errorf("the replacing event's story:\n%s", out.String())
	}
}

// An event the dispatcher dead-lettered whole (too large, not JSON) is
// told as that, with the dead letter's error, not as an event it read and
// planned nothing for: an outside tester's 300,001-byte event was
// explained as a type without templates or recipients all opted out.
func TestPrintTellsAnEventsOwnDeadLetter(t *testing.T) {
	at := time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)
	st := &Story{EventID: "evBig_over", Since: at.Add(-time.Hour), Records: []Record{
		{Time: at, Kind: "event", Topic: "gym.bookings.v1", EventType: "gym.booking.confirmed"},
		{Time: at, Kind: "dead_letter", Topic: "herald.dlq.v1", Class: "poison", Reason: "decode", Stage: "dispatcher",
			Error: "decode (poison): event is 300001 bytes, more than the 300000 allowed"},
	}}
	if err := st.decide(context.Background(), nil, nil); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	st.Print(&b)
	out := b.String()
	for _, want := range []string{"dead-lettered at stage dispatcher", "planned: decode (poison): event is 300001 bytes, more than the 300000 allowed", "herald dlq inspect"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "planned none") {
		t.Errorf("output explains a dead-lettered event as read and planned:\n%s", out)
	}
}

// Records of one millisecond and kind read in the same order every time,
// whichever read finished first (an outside tester diffed two traces).
func TestSortRecordsIsTotal(t *testing.T) {
	at := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	want := []Record{
		{Time: at, Kind: "event", Topic: "gym.bookings.v1", Offset: 3},
		{Time: at, Kind: "notification", Topic: "herald.email.v1", Partition: 0, Offset: 9},
		{Time: at, Kind: "notification", Topic: "herald.email.v1", Partition: 2, Offset: 1},
		{Time: at, Kind: "notification", Topic: "herald.email.v1", Partition: 2, Offset: 4},
		{Time: at, Kind: "notification", Topic: "herald.push.v1", Partition: 0, Offset: 0},
		{Time: at.Add(time.Millisecond), Kind: "retry", Topic: "herald.retry.v1"},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		got := slices.Clone(want)
		r.Shuffle(len(got), func(i, j int) { got[i], got[j] = got[j], got[i] })
		sortRecords(got)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("sorted as\n%+v\nwant\n%+v", got, want)
		}
	}
}
