package redistest_test

import (
	"context"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/gymhq/herald/internal/redistest"
)

// redis-server runs in its own process group, so a terminal's Ctrl-C (sent
// to the whole foreground group) stops herald bench and not the Redis its
// workers still drain against: it was in the bench's group, and the
// interrupted bench's workers spent 30 s dialling a stopped server.
func TestServerHasItsOwnProcessGroup(t *testing.T) {
	s := redistest.Start(t)
	info, err := s.Client().Info(context.Background(), "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	pid := 0
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "process_id:"); ok {
			pid, _ = strconv.Atoi(v)
		}
	}
	if pid == 0 {
		t.Fatalf("no process_id in INFO server:\n%s", info)
	}
	pg, err := syscall.Getpgid(pid)
	if err != nil {
		t.Fatal(err)
	}
	if pg == syscall.Getpgrp() {
		t.Errorf("redis-server (pid %d) is in this process's group %d", pid, pg)
	}
}
