//go:build chaos

package chaos

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/gymhq/herald/internal/kafkatest"
)

// brokerEnv, set in a child of the test binary, makes it a broker: the
// in-process Kafka stand-in on the port it names, until stdin closes. The
// chaos runs use it so that, as in a deployment, the broker is a process of
// its own: the test's producer and sinks do not share its scheduler, and its
// group coordinator sees herald's clients only over the wire.
const brokerEnv = "HERALD_CHAOS_BROKER_PORT"

func TestMain(m *testing.M) {
	if p := os.Getenv(brokerEnv); p != "" {
		os.Exit(serveBroker(p))
	}
	os.Exit(m.Run())
}

func serveBroker(port string) int {
	n, err := strconv.Atoi(port)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos broker:", err)
		return 2
	}
	c, err := kafkatest.New(kfake.Ports(n))
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos broker:", err)
		return 1
	}
	defer c.Close()
	_, _ = os.Stdin.Read(make([]byte, 1)) // returns when the parent closes the pipe or exits
	return 0
}

// startBroker runs the broker in a child process for the rest of the test
// and returns its address once it accepts connections.
func startBroker(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", brokerEnv, port))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(20 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("chaos broker did not listen on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
