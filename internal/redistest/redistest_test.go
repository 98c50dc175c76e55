package redistest_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gymhq/herald/internal/redistest"
)

func TestStartServesAndCleansUp(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)

	if got := srv.URL(); got != "unix://"+srv.Addr() {
		t.Fatalf("URL() = %q, want unix:// + %q", got, srv.Addr())
	}
	opts, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatalf("ParseURL(%q): %v", srv.URL(), err)
	}
	c := redis.NewClient(opts)
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET through URL client: %v", err)
	}
	if got := srv.Client().Get(ctx, "k").Val(); got != "v" {
		t.Fatalf("GET through shared client = %q, want v", got)
	}

	// Persistence is off: a test's data never outlives its server.
	for param, want := range map[string]string{"save": "", "appendonly": "no", "port": "0"} {
		if got := srv.Client().ConfigGet(ctx, param).Val()[param]; got != want {
			t.Errorf("CONFIG GET %s = %q, want %q", param, got, want)
		}
	}

	if err := srv.FlushAll(); err != nil {
		t.Fatal(err)
	}
	if n := srv.Client().DBSize(ctx).Val(); n != 0 {
		t.Fatalf("DBSIZE after FlushAll = %d, want 0", n)
	}
}

func TestStopAndRestart(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	c := srv.Client()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	opts := srv.Options()
	opts.MaxRetries, opts.DialerRetries = -1, 1 // fail fast
	probe := redis.NewClient(opts)
	defer probe.Close()
	if err := probe.Ping(ctx).Err(); err == nil {
		t.Fatal("PING after Stop succeeded, want a connection error")
	}
	srv.Stop() // idempotent

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}
	if n := c.Exists(ctx, "k").Val(); n != 0 {
		t.Fatal("key survived Restart, want an empty server")
	}
}

func TestStartProcess(t *testing.T) {
	dir, err := os.MkdirTemp("", "rtp")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)

	srv, err := redistest.StartProcess(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(srv.Addr(), dir) {
		t.Fatalf("Addr() = %q, want a socket inside %q", srv.Addr(), dir)
	}
	if err := srv.Client().Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(srv.Addr()); !os.IsNotExist(err) {
		t.Fatalf("socket still present after Close: %v", err)
	}
	if err := srv.Restart(); err == nil {
		t.Fatal("Restart after Close succeeded, want an error")
	}
}

func TestStartProcessRejectsLongSocketPath(t *testing.T) {
	dir := "/" + strings.Repeat("d", 120)
	if _, err := redistest.StartProcess(dir); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("StartProcess(long dir) error = %v, want a socket path length error", err)
	}
}

// fatalRecorder stands in for a test to see how Start fails.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestStartWithoutRedisFails: a missing redis-server fails the test and says
// how to get it; it is never a silent skip.
func TestStartWithoutRedisFails(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		redistest.Start(rec)
	}()
	<-done
	if !strings.Contains(rec.msg, "redis-server") || !strings.Contains(rec.msg, "make test") {
		t.Fatalf("Start without redis-server: Fatalf(%q), want a message naming redis-server and `make test`", rec.msg)
	}
}

// TestStartWithALongTestName: unix socket paths are short, test temp dirs
// are not; Start must still work.
func TestStartWithALongTestName(t *testing.T) {
	t.Run(strings.Repeat("long", 40), func(t *testing.T) {
		srv := redistest.Start(t)
		if len(srv.Addr()) > 100 {
			t.Fatalf("socket path is %d bytes", len(srv.Addr()))
		}
		if err := srv.Client().Ping(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
	})
}

// A redis-server dies with the process that started it, however that dies:
// `herald bench ... | head -2` (SIGPIPE) and a SIGKILLed bench left theirs
// running, orphaned, with their directories (found by the outside tester).
func TestServerDiesWithItsProcess(t *testing.T) {
	if dir := os.Getenv("REDISTEST_CHILD_DIR"); dir != "" {
		s, err := redistest.StartProcess(dir)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(s.Addr())
		select {} // until killed
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestServerDiesWithItsProcess$")
	cmd.Env = append(os.Environ(), "REDISTEST_CHILD_DIR="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	sock := strings.TrimSpace(line)
	client := redis.NewClient(&redis.Options{Network: "unix", Addr: sock, MaxRetries: -1})
	defer client.Close()
	ctx := context.Background()
	if err := client.Ping(ctx).Err(); err != nil {
		t.Fatalf("child's redis-server (%s): %v", line, err)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for client.Ping(ctx).Err() == nil {
		if time.Now().After(deadline) {
			_ = client.Shutdown(ctx).Err() // do not leave it behind
			t.Fatal("redis-server still answers 10 s after the process that started it was killed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
