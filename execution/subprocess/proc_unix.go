//go:build unix

package subprocess

import (
	"errors"
	"os"
	"syscall"
)

// errNoProcess reports that no process has the PID.
var errNoProcess = errors.New("no such process")

// signalTerm asks p to terminate.
func signalTerm(p *os.Process) error { return p.Signal(syscall.SIGTERM) }

// processAlive reports whether a process with pid exists (signal 0). A
// process owned by another user (EPERM) exists.
func processAlive(pid int) (bool, error) {
	switch err := syscall.Kill(pid, 0); {
	case err == nil, errors.Is(err, syscall.EPERM):
		return true, nil
	case errors.Is(err, syscall.ESRCH):
		return false, nil
	default:
		return false, err
	}
}

// terminatePID sends SIGTERM to pid.
func terminatePID(pid int) error {
	err := syscall.Kill(pid, syscall.SIGTERM)
	if errors.Is(err, syscall.ESRCH) {
		return errNoProcess
	}
	return err
}
