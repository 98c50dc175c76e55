package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A herald dev that was killed leaves its stand-ins' directory behind
// (the outside tester found them piling up in /tmp); the next herald dev
// removes those of processes that no longer run, and only those.
func TestDevDirRemovesThoseOfGoneProcesses(t *testing.T) {
	tmp := t.TempDir()
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Skip("no true(1):", err)
	}
	mk := func(name string) string {
		d := filepath.Join(tmp, name)
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "fcm-service-account.json"), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
		return d
	}
	stale := mk(fmt.Sprintf("herald-dev-%d-123", gone.ProcessState.Pid()))
	running := mk(fmt.Sprintf("herald-dev-%d-456", os.Getppid())) // the go test driver: alive
	mine := mk(fmt.Sprintf("herald-dev-%d-789", os.Getpid()))
	other := mk("herald-dev-3780074") // not ours to judge: no pid in the name
	dir, err := devDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(filepath.Base(dir), fmt.Sprintf("herald-dev-%d-", os.Getpid())) {
		t.Errorf("new directory %s is not named for this process", dir)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("directory of a gone process kept: %v", err)
	}
	for _, d := range []string{running, mine, other, dir} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s removed: %v", d, err)
		}
	}
}

// herald dev names the HERALD_* variables it ignores.
func TestDevIgnoredEnv(t *testing.T) {
	got := devIgnoredEnv([]string{"PATH=/bin", "HERALD_REDIS_URL=redis://x", "HERALD_EVENTS_TOPIC=my.events", "HERALD_TEMPLATES_DIR=/t", "HERALD_KAFKA_BROKERS=k:9092", "HERALDRY=1"})
	if want := []string{"HERALD_EVENTS_TOPIC", "HERALD_KAFKA_BROKERS"}; !slices.Equal(got, want) {
		t.Errorf("devIgnoredEnv = %v, want %v", got, want)
	}
}
