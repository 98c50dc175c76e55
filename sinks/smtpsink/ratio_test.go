package smtpsink_test

import (
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/gymhq/herald/sinks/smtpsink"
)

func TestFailRatio(t *testing.T) {
	f := start(t, smtpsink.Options{})
	if err := f.sink.FailRatio(0.5, 451, "4.3.0", "try later"); err != nil {
		t.Fatal(err)
	}
	failed := 0
	for range 10 {
		_, err := f.send(t, envelope{to: []string{"ana@example.com"}, raw: plain})
		if err != nil {
			failed++
			wantSMTPError(t, err, 451, smtp.EnhancedCode{4, 3, 0})
		}
	}
	if failed != 5 {
		t.Errorf("failed %d of 10, want 5", failed)
	}
	f.sink.ClearFaults()
	if _, err := f.send(t, envelope{to: []string{"ana@example.com"}, raw: plain}); err != nil {
		t.Errorf("after ClearFaults: %v", err)
	}
	if err := f.sink.FailRatio(0.1, 250, "", ""); err == nil {
		t.Error("FailRatio accepted a success code")
	}
}
