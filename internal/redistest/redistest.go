// Package redistest runs a real redis-server for tests and benchmarks.
//
// Behaviour that lives in Redis (Lua atomicity, key expiry, what a client sees
// when the server goes away) is tested against the real server, never a
// fake. Each Server is a private redis-server process listening only on a
// unix socket in its own directory, with persistence off, so tests can run in
// parallel and leave nothing behind.
//
// redis-server must be on PATH; `make test` installs it. A test that needs it
// fails, loudly, when it is missing: a skipped idempotency test would look
// like a passing one.
package redistest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Binary is the redis-server executable looked up on PATH.
const Binary = "redis-server"

// startTimeout bounds how long a fresh server may take to answer PING.
const startTimeout = 10 * time.Second

// maxSocketPath keeps the socket path under the kernel's sun_path limit
// (108 bytes on Linux, 104 on macOS).
const maxSocketPath = 100

// Server is one redis-server process on a unix socket.
//
// Its methods are safe for concurrent use. Stop and Restart exist for outage
// tests: after Stop, clients get connection errors; after Restart the same
// socket answers again, with an empty dataset unless started Persistent.
type Server struct {
	tb    testing.TB // nil when started by StartProcess
	dir   string
	sock  string
	extra []string // more redis-server arguments (StartWith)

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	out    *syncBuffer
	client *redis.Client
	closed bool
}

// Start starts a redis-server for the test and stops it when the test ends.
// It calls tb.Fatalf if redis-server is not installed or does not come up.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return StartWith(tb)
}

// Persistent are StartWith arguments that make every write durable before
// it is acknowledged (append-only file, fsync always), so that Restart
// comes back with the data, as a production Redis with AOF would.
var Persistent = []string{"--appendonly", "yes", "--appendfsync", "always"}

// StartWith is Start with more redis-server arguments, which override the
// defaults (for example Persistent, or --requirepass / --user for ACL
// tests). They apply again on Restart.
func StartWith(tb testing.TB, args ...string) *Server {
	tb.Helper()
	if _, err := exec.LookPath(Binary); err != nil {
		tb.Fatalf("redistest: %s not found on PATH (%v): run `make test`, which installs it", Binary, err)
	}
	dir := tb.TempDir()
	if len(filepath.Join(dir, "redis.sock")) > maxSocketPath {
		// Long test names make long temp dirs; unix socket paths are short.
		short, err := os.MkdirTemp("", "redistest")
		if err != nil {
			tb.Fatalf("redistest: %v", err)
		}
		tb.Cleanup(func() { _ = os.RemoveAll(short) })
		dir = short
	}
	s := &Server{tb: tb, dir: dir, sock: filepath.Join(dir, "redis.sock"), extra: args}
	if err := s.start(); err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// StartProcess starts a redis-server whose socket and working files live in
// dir, for use outside tests (for example by a benchmark command). The caller
// must Close it.
func StartProcess(dir string) (*Server, error) {
	if _, err := exec.LookPath(Binary); err != nil {
		return nil, fmt.Errorf("redistest: %s not found on PATH: %w", Binary, err)
	}
	sock := filepath.Join(dir, "redis.sock")
	if len(sock) > maxSocketPath {
		return nil, fmt.Errorf("redistest: socket path %q is longer than %d bytes", sock, maxSocketPath)
	}
	s := &Server{dir: dir, sock: sock}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

// URL returns a go-redis compatible URL for the server: unix:///path/to/sock.
func (s *Server) URL() string { return "unix://" + s.sock }

// Addr returns the path of the server's unix socket.
func (s *Server) Addr() string { return s.sock }

// Client returns a client for the server, shared by every caller and closed
// with the server. It survives Stop and Restart: it reconnects.
func (s *Server) Client() *redis.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		s.client = redis.NewClient(s.Options())
	}
	return s.client
}

// Options returns go-redis options for a new client of the server.
func (s *Server) Options() *redis.Options {
	return &redis.Options{Network: "unix", Addr: s.sock}
}

// FlushAll empties the server.
func (s *Server) FlushAll() error {
	err := s.Client().FlushAll(context.Background()).Err()
	if err != nil {
		err = fmt.Errorf("redistest: FLUSHALL: %w", err)
		s.fatal(err)
	}
	return err
}

// Stop kills the server, as an outage would. It is a no-op when the server
// is not running.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

// Restart starts the server again on the same socket, with no data unless
// it was started with Persistent. It is
// used after Stop; on a running server it stops it first.
func (s *Server) Restart() error {
	s.mu.Lock()
	s.stopLocked()
	s.mu.Unlock()
	err := s.start()
	s.fatal(err)
	return err
}

// Pause freezes the server (SIGSTOP), as a hung host would: connections
// stay open and nothing is answered until Resume (SIGCONT).
func (s *Server) Pause() error { return s.signal(syscall.SIGSTOP) }

// Resume continues a paused server.
func (s *Server) Resume() error { return s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return fmt.Errorf("redistest: %v: the server is not running", sig)
	}
	return s.cmd.Process.Signal(sig)
}

// Close stops the server and closes the shared client.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.stopLocked()
	if s.client != nil {
		_ = s.client.Close()
		s.client = nil
	}
	return nil
}

// Output returns what redis-server has logged since it was last started.
func (s *Server) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out == nil {
		return ""
	}
	return s.out.String()
}

func (s *Server) fatal(err error) {
	if err != nil && s.tb != nil {
		s.tb.Helper()
		s.tb.Fatalf("%v", err)
	}
}

func (s *Server) start() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("redistest: server is closed")
	}
	out := &syncBuffer{}
	cmd := exec.Command(Binary,
		"--port", "0",
		"--unixsocket", s.sock,
		"--unixsocketperm", "700",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
		"--loglevel", "warning",
	)
	cmd.Args = append(cmd.Args, s.extra...)
	dieWithParent(cmd)
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		return fmt.Errorf("redistest: starting %s: %w", Binary, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited, s.out = cmd, exited, out
	s.mu.Unlock()

	if err := waitReady("unix", s.sock, exited); err != nil {
		s.Stop()
		return fmt.Errorf("redistest: %s on %s: %w; output:\n%s", Binary, s.sock, err, out.String())
	}
	return nil
}

func (s *Server) stopLocked() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
	// A killed server leaves its socket file behind; remove it so a client
	// gets "no such file" rather than a stale socket, and so Restart binds
	// cleanly.
	_ = os.Remove(s.sock)
}

// waitReady polls the server with PING, backing off from 1ms to 50ms, until
// the server answers PONG, the process exits, or startTimeout passes.
func waitReady(network, addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	backoff := time.Millisecond
	var lastErr error
	for {
		if lastErr = ping(network, addr); lastErr == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to PING after %v: %w", startTimeout, lastErr)
		}
		t := time.NewTimer(backoff)
		select {
		case <-exited:
			t.Stop()
			return errors.New("exited before answering PING")
		case <-t.C:
		}
		backoff = min(backoff*2, 50*time.Millisecond)
	}
}

// ping speaks just enough RESP to ask a server whether it is up, without a
// client library's pooling and retries getting in the way.
func ping(network, addr string) error {
	conn, err := net.DialTimeout(network, addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	if err != nil {
		return err
	}
	// A server started with a password or ACL users (StartWith) is up when
	// it refuses an unauthenticated PING.
	if bytes.HasPrefix(buf[:n], []byte("-NOAUTH")) || bytes.HasPrefix(buf[:n], []byte("-NOPERM")) {
		return nil
	}
	if !bytes.HasPrefix(buf[:n], []byte("+PONG")) {
		// For example "-LOADING ..." while a dataset loads.
		return fmt.Errorf("unexpected reply %q", bytes.TrimSpace(buf[:n]))
	}
	return nil
}

// syncBuffer collects process output written from exec's copying goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 64<<10 {
		return len(p), nil // enough to explain a failure
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
