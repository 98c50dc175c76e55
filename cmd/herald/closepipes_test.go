package main

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gymhq/herald/internal/redistest"
	"github.com/gymhq/herald/internal/rpipe"
)

// TestStoppingDoesNotWaitOutAFrozenRedis: with Redis frozen (a hung host,
// SIGSTOP) and a pipeline on the wire, stopping cuts the pipeline off after
// its short wait instead of waiting out the client's read timeout, and the
// call cut off reports an error, not success.
func TestStoppingDoesNotWaitOutAFrozenRedis(t *testing.T) {
	srv := redistest.Start(t)
	opts := srv.Options()
	opts.ReadTimeout = 2 * time.Minute // what a frozen Redis would otherwise hold stopping for
	client := redis.NewClient(opts)
	pipes := rpipe.New(client, 0)
	ctx := context.Background()
	if c := pipes.Start(ctx, rpipe.Cmd{Key: "herald:suppress:sms", Field: "+447700900123"}); c == nil {
		t.Fatal("pipes closed")
	} else if <-c.Done(); c.Err != redis.Nil {
		t.Fatalf("lookup on a live Redis: %v", c.Err)
	}

	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Resume() })
	onTheWire := pipes.Start(ctx, rpipe.Cmd{Key: "herald:suppress:sms", Field: "+447700900124"})
	stopped := make(chan struct{})
	go func() { closePipes(pipes, client, 100*time.Millisecond); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("stopping waited for a frozen Redis")
	}
	<-onTheWire.Done()
	if onTheWire.Err == nil || onTheWire.Err == redis.Nil {
		t.Fatalf("the call cut off reported %v, want an error", onTheWire.Err)
	}
	t.Logf("the call cut off: %v", onTheWire.Err)
}
