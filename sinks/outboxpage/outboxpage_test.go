package outboxpage_test

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gymhq/herald/sinks"
	"github.com/gymhq/herald/sinks/outboxpage"
)

func TestPageAndAPI(t *testing.T) {
	out := sinks.NewOutbox(0)
	at := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	out.Add(sinks.Delivery{Channel: "push", To: "tok", Title: "Booked", Text: "See you", At: at, NotificationID: "ntf_1"})
	out.Add(sinks.Delivery{Channel: "webhook", To: "/dev/webhooks/crm", Subject: "gym.booking.confirmed", Text: `{"a":"<b>"}`, At: at})
	o := outboxpage.Options{Outbox: out, Kafka: "127.0.0.1:9092", Topic: "gym.bookings.v1", Store: "in-memory"}

	rec := httptest.NewRecorder()
	outboxpage.API(o).ServeHTTP(rec, httptest.NewRequest("GET", "/api/outbox", nil))
	var got []outboxpage.Entry
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || len(got) != 2 {
		t.Fatalf("%v %s", err, rec.Body.String())
	}
	if got[0].Subject != "Booked" || got[0].NotificationID != "ntf_1" || got[1].Channel != "webhook" {
		t.Errorf("entries %+v", got)
	}

	rec = httptest.NewRecorder()
	outboxpage.Page(o).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	body := rec.Body.String()
	if !strings.Contains(body, "2 delivered") || !strings.Contains(body, "/dev/webhooks/crm") || strings.Contains(body, `{"a":"<b>"}`) {
		t.Errorf("page: escaped webhook payload and both deliveries expected:\n%s", body)
	}
}
