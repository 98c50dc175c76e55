package notification

import (
	"strconv"
	"time"
	"unsafe"

	"github.com/gymhq/herald/internal/jsonr"
	"github.com/gymhq/herald/internal/jsonw"
)

// appendJSON appends n's readable form: the bytes encoding/json writes for
// the struct with HTML escaping off (field order and names of the tags,
// omitempty and omitzero as tagged, Data's keys sorted), written without
// reflection. The scheduler embeds every scheduled notification in this
// form, and encoding it by reflection was 1.5% of the pipeline scenario's
// CPU. FuzzJSONAsEncodingJSON holds it to encoding/json's bytes.
func appendJSON(b []byte, n *Notification) ([]byte, error) {
	str := func(name, v string) {
		b = append(b, name...)
		b = jsonw.String(b, v)
	}
	var err error
	tm := func(name string, t time.Time) {
		if err != nil {
			return
		}
		b = append(b, name...)
		b, err = jsonw.Time(b, t)
	}
	str(`{"id":`, n.ID)
	str(`,"event_id":`, n.EventID)
	str(`,"event_type":`, n.EventType)
	str(`,"template":`, n.Template)
	str(`,"channel":`, string(n.Channel))
	str(`,"locale":`, n.Locale)
	str(`,"recipient_id":`, n.RecipientID)
	str(`,"to":`, n.To)
	b = append(b, `,"data":`...)
	b = n.Data.appendJSON(b)
	str(`,"priority":`, string(n.Priority))
	tm(`,"created_at":`, n.CreatedAt)
	if err != nil {
		return nil, err
	}
	b = append(b, `,"attempt":`...)
	b = strconv.AppendInt(b, int64(n.Attempt), 10)
	if !n.NotBefore.IsZero() {
		tm(`,"not_before":`, n.NotBefore)
	}
	if !n.FirstFailedAt.IsZero() {
		tm(`,"first_failed_at":`, n.FirstFailedAt)
	}
	if n.Category != "" {
		str(`,"category":`, n.Category)
	}
	if n.TimeZone != "" {
		str(`,"time_zone":`, n.TimeZone)
	}
	if !n.DueAt.IsZero() {
		tm(`,"due_at":`, n.DueAt)
	}
	if n.Deferred != "" {
		str(`,"deferred":`, n.Deferred)
	}
	if len(n.CancelKeys) > 0 {
		b = append(b, `,"cancel_keys":`...)
		b = jsonw.Strings(b, n.CancelKeys)
	}
	if !n.ExpiresAt.IsZero() {
		tm(`,"expires_at":`, n.ExpiresAt)
	}
	if err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// readJSON reads the JSON form as appendJSON writes it (its fields in its
// order, no whitespace), without reflection: the form every scheduled
// notification is held in, decoded again to fire it and to log its
// cancellation (encoding/json took about 10% of the scheduler's CPU there;
// issue 14). ok is false for any other layout, which encoding/json then
// decodes (unmarshalJSON); FuzzReadJSON holds the two to the same results.
// shared and into are as for parse; a failed read leaves into's data empty.
func readJSON(b []byte, shared bool, into *decodeInto) (_ *Notification, ok bool) {
	var s string
	if shared {
		s = unsafe.String(unsafe.SliceData(b), len(b))
	} else {
		s = string(b) // one copy, which the strings share
	}
	var n Notification
	var data []Field
	if into != nil {
		data = into.data[:0]
		defer func() {
			if !ok {
				clear(into.data)
				into.data = into.data[:0]
			}
		}()
	}
	r := jsonr.New(s)
	r.Expect(`{"id":`)
	n.ID = r.String()
	r.Expect(`,"event_id":`)
	n.EventID = r.String()
	r.Expect(`,"event_type":`)
	n.EventType = r.String()
	r.Expect(`,"template":`)
	n.Template = r.String()
	r.Expect(`,"channel":`)
	n.Channel = Channel(r.String())
	r.Expect(`,"locale":`)
	n.Locale = r.String()
	r.Expect(`,"recipient_id":`)
	n.RecipientID = r.String()
	r.Expect(`,"to":`)
	n.To = r.String()
	r.Expect(`,"data":`)
	if r.Object(func(k, v string) { data = append(data, Field{k, v}) }) {
		if data == nil {
			data = []Field{}
		}
		n.Data = NewData(data) // in order, unless written by another hand
		if into != nil {
			into.data = data
		}
	}
	r.Expect(`,"priority":`)
	n.Priority = Priority(r.String())
	r.Expect(`,"created_at":`)
	n.CreatedAt = r.Time()
	r.Expect(`,"attempt":`)
	n.Attempt = r.Int()
	if r.Lit(`,"not_before":`) {
		n.NotBefore = r.Time()
	}
	if r.Lit(`,"first_failed_at":`) {
		n.FirstFailedAt = r.Time()
	}
	if r.Lit(`,"category":`) {
		n.Category = r.String()
	}
	if r.Lit(`,"time_zone":`) {
		n.TimeZone = r.String()
	}
	if r.Lit(`,"due_at":`) {
		n.DueAt = r.Time()
	}
	if r.Lit(`,"deferred":`) {
		n.Deferred = r.String()
	}
	if r.Lit(`,"cancel_keys":`) {
		n.CancelKeys = r.Strings()
	}
	if r.Lit(`,"expires_at":`) {
		n.ExpiresAt = r.Time()
	}
	r.Expect("}")
	if !r.Done() {
		return nil, false
	}
	if into != nil {
		*into.n = n
		return into.n, true
	}
	return &n, true
}
