//go:build !plan9

package driver

import (
	"errors"
	"syscall"
)

// classifyErrno classifies the operating system's error numbers.
func classifyErrno(err error) ErrorClass {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return ClassUnknown
	}
	switch errno {
	case syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE,
		syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ENETDOWN,
		syscall.ENETRESET, syscall.EAGAIN, syscall.EADDRNOTAVAIL:
		return ClassTransient
	case syscall.ENOSPC, syscall.EROFS, syscall.EACCES, syscall.EPERM, syscall.EIO:
		return ClassPermanent
	}
	return ClassUnknown
}
