package sinks_test

import (
	"testing"

	"github.com/gymhq/herald/sinks"
)

// TestOutboxIdentify: the sender's answer names the delivery a sink
// recorded, by provider id, Message-ID or notification id; what the sink
// already knew is kept; an evicted delivery is not found.
func TestOutboxIdentify(t *testing.T) {
	o := sinks.NewOutbox(3)
	o.Add(sinks.Delivery{Channel: "sms", ProviderID: "SM1"})
	o.Add(sinks.Delivery{Channel: "email", MessageID: "<ntf_2@herald>", NotificationID: "ntf_2"})
	o.Add(sinks.Delivery{Channel: "push", ProviderID: "projects/p/messages/3"})
	o.Add(sinks.Delivery{Channel: "sms", ProviderID: "SM4"})

	if o.Identify("sms", "SM1", "ntf_1", "evt_1") {
		t.Error("identified an evicted delivery")
	}
	for _, c := range []struct{ ch, pid, nid string }{
		{"email", "ntf_2@herald", "ntf_2"}, // Message-ID without brackets differs: found by notification id
		{"push", "projects/p/messages/3", "ntf_3"},
		{"sms", "SM4", "ntf_4"},
	} {
		if !o.Identify(c.ch, c.pid, c.nid, "evt_"+c.nid) {
			t.Errorf("%s %s not identified", c.ch, c.pid)
		}
	}
	if o.Identify("email", "SM4", "", "evt_x") {
		t.Error("matched a delivery of another channel")
	}
	for _, id := range []string{"ntf_2", "ntf_3", "ntf_4"} {
		found := false
		for _, d := range o.All() {
			if d.NotificationID == id {
				found = d.EventID == "evt_"+id
			}
		}
		if !found {
			t.Errorf("%s: not identified with its event: %+v", id, o.All())
		}
	}
	if d, ok := o.Find("email", "ntf_2"); !ok || d.MessageID != "<ntf_2@herald>" {
		t.Errorf("Find email ntf_2 = %+v, %v", d, ok)
	}
	if _, ok := o.Find("email", "ntf_3"); ok {
		t.Error("Find returned a push delivery for channel email")
	}
}
