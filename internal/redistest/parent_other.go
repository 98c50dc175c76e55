//go:build !linux

package redistest

import "os/exec"

// dieWithParent is Linux-only (PR_SET_PDEATHSIG); elsewhere a killed
// parent leaves its redis-server running.
func dieWithParent(*exec.Cmd) {}
