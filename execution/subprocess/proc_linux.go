package subprocess

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"time"
)

// startTolerance bounds the difference between a ref's start time and the
// process start time read from /proc (boot time has one-second resolution).
const startTolerance = 3 * time.Second

// procIdentity checks, through /proc, whether the live process pid is the
// child of task taskID started at startMs. known is false when /proc cannot
// tell (then only liveness counts).
func procIdentity(pid int, taskID string, startMs int64) (known, match bool) {
	dir := "/proc/" + strconv.Itoa(pid)
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		if os.IsNotExist(err) {
			return true, false
		}
		return false, false
	}
	// The command name (field 2) may contain spaces and parentheses: the
	// fields after it start after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return false, false
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 20 {
		return false, false
	}
	if state := fields[0]; state == "Z" || state == "X" || state == "x" {
		return true, false // exited, not reaped yet
	}
	if taskID != "" {
		if env, err := os.ReadFile(dir + "/environ"); err == nil {
			want := []byte("QUEUES_TASK_ID=" + taskID)
			for _, kv := range bytes.Split(env, []byte{0}) {
				if bytes.Equal(kv, want) {
					return true, true
				}
			}
			return true, false
		}
	}
	// Field 22 (index 19 here): start time in clock ticks after boot.
	ticks, err := strconv.ParseInt(fields[19], 10, 64)
	if err != nil {
		return false, false
	}
	boot, ok := bootTime()
	if !ok {
		return false, false
	}
	const clockTicks = 100 // USER_HZ on every Linux architecture Go supports
	started := boot.Add(time.Duration(ticks) * (time.Second / clockTicks))
	d := started.Sub(time.UnixMilli(startMs))
	return true, d < startTolerance && d > -startTolerance
}

// bootTime reads the boot time from /proc/stat.
func bootTime() (time.Time, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, false
			}
			return time.Unix(n, 0), true
		}
	}
	return time.Time{}, false
}
