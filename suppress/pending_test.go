package suppress_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gymhq/herald/failure"
	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/internal/rpipe"
	"github.com/gymhq/herald/suppress"
)

// TestBeginOnSharedPipes: a lookup begun on shared pipes waits to travel
// with the next command, and is answered even when none comes; closing the
// list leaves the pipes to their maker; a list that cannot hold the address
// says so as Lookup does.
func TestBeginOnSharedPipes(t *testing.T) {
	srv := redistest.Start(t)
	pipes := rpipe.New(srv.Client(), 0)
	t.Cleanup(pipes.Close)
	list := suppress.NewRedisOn(pipes, "", nil)
	ctx := context.Background()
	if err := list.Add(ctx, "sms", "+447700900123", "unsubscribed"); err != nil {
		t.Fatal(err)
	}

	answered := make(chan error, 1)
	go func() {
		e, ok, err := suppress.Begin(ctx, list, "sms", "+447700900123").Wait() // nothing follows it
		if err == nil && (!ok || e.Reason != "unsubscribed") {
			err = errors.New("entry not found")
		}
		answered <- err
	}()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a lookup that nothing followed was never sent")
	}
	if _, ok, err := suppress.Begin(ctx, list, "sms", "+447700900999").Wait(); ok || err != nil {
		t.Fatalf("absent address: found %v, %v", ok, err)
	}
	if _, _, err := suppress.Begin(ctx, list, "sms", " ").Wait(); !errors.Is(err, suppress.ErrInvalid) {
		t.Fatalf("blank address: %v, want ErrInvalid", err)
	}

	if err := list.Close(); err != nil {
		t.Fatal(err)
	}
	if c := pipes.Start(ctx, rpipe.Cmd{Key: "herald:suppress:sms", Field: "+447700900123"}); c == nil {
		t.Fatal("closing the list closed the shared pipes")
	} else if <-c.Done(); c.Err != nil {
		t.Fatal(c.Err)
	}

	gone, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := suppress.Begin(gone, list, "sms", "+447700900123").Wait(); failure.ClassOf(err) != failure.Retryable {
		t.Fatalf("lookup with its context ended: %v, want a retryable error", err)
	}
}

// TestBeginOnAnotherStore asks the store in Wait.
func TestBeginOnAnotherStore(t *testing.T) {
	list := suppress.NewMemory(nil)
	ctx := context.Background()
	p := suppress.Begin(ctx, list, "email", "Gone@Example.com")
	if err := list.Add(ctx, "email", "gone@example.com", "invalid_address"); err != nil {
		t.Fatal(err)
	}
	if e, ok, err := p.Wait(); err != nil || !ok || e.Reason != "invalid_address" {
		t.Fatalf("Wait = %+v, %v, %v; want the entry added after Begin", e, ok, err)
	}
}
