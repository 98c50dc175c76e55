package failover_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gymhq/herald/channels"
	"github.com/gymhq/herald/channels/failover"
	"github.com/gymhq/herald/channels/sms"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/sinks"
	"github.com/gymhq/herald/sinks/twiliofake"
)

// TestTwilioServices: two Twilio fakes (two messaging services, each its
// own API), reached through the real twilio-go client; one answers 500 in
// Twilio's error shape for a while and then recovers. Every SMS is sent
// exactly once, and the shares move off and back.
func TestTwilioServices(t *testing.T) {
	const sid, token = "AC00000000000000000000000000000000", "authtoken0000000"
	out := sinks.NewOutbox(0)
	var down atomic.Bool
	var ps []failover.Provider
	for i := range 2 {
		fake := twiliofake.New(out, twiliofake.Options{AccountSID: sid, AuthToken: token})
		var h http.Handler = fake
		if i == 0 {
			h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if down.Load() {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusInternalServerError)
					fmt.Fprint(w, `{"code": 20500, "message": "Internal Server Error", "more_info": "https://www.twilio.com/docs/errors/20500", "status": 500}`)
					return
				}
				fake.ServeHTTP(w, r)
			})
		}
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		service := fmt.Sprintf("MG%032d", i+1)
		snd, err := sms.New(sms.Config{AccountSID: sid, AuthToken: token, MessagingServiceSID: service, APIURL: srv.URL, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, failover.Provider{Name: service, Weight: 1, Sender: snd})
	}
	s := newSender(t, failover.Options{Channel: notification.SMS, Failures: 3, OpenFor: 300 * time.Millisecond}, ps...)
	by := map[string]int{}
	send := func(from, n int) string {
		clear(by)
		for i := from; i < from+n; i++ {
			m := &channels.Message{NotificationID: fmt.Sprintf("ntf_%03d", i), Channel: notification.SMS,
				To: fmt.Sprintf("+4477009%05d", i), Text: "Your class starts at 07:00."}
			r, err := s.Send(context.Background(), m)
			if err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
			by[r.Provider]++
		}
		return fmt.Sprintf("%d/%d", by[ps[0].Name], by[ps[1].Name])
	}
	before := send(0, 60)
	down.Store(true)
	during := send(60, 60)
	if by[ps[0].Name] != 0 {
		t.Errorf("the failing service accepted %d", by[ps[0].Name])
	}
	down.Store(false)
	time.Sleep(350 * time.Millisecond)
	after := send(120, 60)
	if by[ps[0].Name] < 20 {
		t.Errorf("after recovery the first service took %d of 60", by[ps[0].Name])
	}
	t.Logf("service A/B accepted: before %s, A failing %s, A back %s", before, during, after)
	seen := map[string]bool{}
	for _, d := range out.All() {
		if seen[d.To] {
			t.Errorf("%s texted twice", d.To)
		}
		seen[d.To] = true
	}
	if len(seen) != 180 {
		t.Errorf("%d numbers texted, want 180", len(seen))
	}
	if h := s.Health(); h[0].Errors != 3 {
		t.Errorf("service A failed %d calls, want 3 (Failures) before leaving the rotation", h[0].Errors)
	}
}
