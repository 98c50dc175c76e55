package redistest

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill cmd when the process that started it
// dies, however it dies: a bench killed by SIGKILL, or by SIGPIPE when its
// output is piped into head, left its redis-server running for good. And
// only then: cmd gets its own process group, so a terminal's Ctrl-C, sent
// to the whole foreground group, stops the parent and not its Redis under
// it (herald bench's workers spent 30 s dialling the stopped server before
// they exited, and filled stderr with it).
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
