//go:build !unix

package subprocess

import (
	"errors"
	"os"
)

// errNoProcess reports that no process has the PID.
var errNoProcess = errors.New("no such process")

// signalTerm stops p. Without Unix signals the process is killed.
func signalTerm(p *os.Process) error { return p.Kill() }

// processAlive reports whether a process with pid exists.
func processAlive(pid int) (bool, error) {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false, nil
	}
	_ = p.Release()
	return true, nil
}

// terminatePID stops pid.
func terminatePID(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return errNoProcess
	}
	return p.Kill()
}
