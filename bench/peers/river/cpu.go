package main

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuSnapshot sums the CPU time of every local postgres process and of this
// process (bench diagnostics: CPU per job is far less sensitive to other
// load on a shared machine than wall-clock rates).
type cpuSnapshot struct{ pg, self time.Duration }

func takeCPU() cpuSnapshot {
	var s cpuSnapshot
	tick := time.Second / 100 // USER_HZ
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		st := string(b)
		i := strings.LastIndexByte(st, ')')
		if i < 0 || !strings.Contains(st[:i], "(postgres") {
			continue
		}
		f := strings.Fields(st[i+2:])
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		k, _ := strconv.ParseInt(f[12], 10, 64)
		s.pg += time.Duration(u+k) * tick
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return s
}
