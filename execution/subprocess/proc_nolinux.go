//go:build !linux

package subprocess

// procIdentity cannot check a process's identity without /proc: only
// liveness counts.
func procIdentity(pid int, taskID string, startMs int64) (known, match bool) { return false, false }
