package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of /proc/stat (fixed at 100 on Linux).
const userHZ = 100

// cpuTimes is the machine-wide line of /proc/stat in ticks.
type cpuTimes struct {
	Busy, Total uint64
}

// parseProcStat reads the aggregate "cpu" line: busy is everything but
// idle and iowait (guest time is already included in user).
func parseProcStat(data string) (cpuTimes, error) {
	sc := bufio.NewScanner(strings.NewReader(data))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || fields[0] != "cpu" {
			continue
		}
		var t cpuTimes
		for i, f := range fields[1:] {
			if i >= 8 { // guest and guest_nice are part of user and nice
				break
			}
			v, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				return cpuTimes{}, fmt.Errorf("/proc/stat: %q: %w", f, err)
			}
			t.Total += v
			if i != 3 && i != 4 { // idle, iowait
				t.Busy += v
			}
		}
		return t, nil
	}
	return cpuTimes{}, errors.New("/proc/stat: no cpu line")
}

func readCPU() (cpuTimes, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	return parseProcStat(string(data))
}

// busySeconds is the CPU time (all cores) spent between two readings.
func busySeconds(before, after cpuTimes) float64 {
	return float64(after.Busy-before.Busy) / userHZ
}

// processTicks is the CPU time (user + system, in ticks) of process pid.
func processTicks(pid int) (uint64, error) {
	if pid <= 0 {
		return 0, errors.New("process not running")
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcessStat(string(data))
}

// parseProcessStat reads utime + stime from a /proc/PID/stat line (fields
// 14 and 15; the command name in parentheses may contain spaces).
func parseProcessStat(data string) (uint64, error) {
	i := strings.LastIndexByte(data, ')')
	if i < 0 {
		return 0, errors.New("/proc/PID/stat: no command name")
	}
	fields := strings.Fields(data[i+1:])
	// fields[0] is field 3 (state): utime is field 14, stime field 15.
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/PID/stat: %d fields", len(fields)+2)
	}
	var sum uint64
	for _, f := range fields[11:13] {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/PID/stat: %q: %w", f, err)
		}
		sum += v
	}
	return sum, nil
}

// cpuPercent converts ticks used over elapsed wall time into % of one core.
func cpuPercent(ticks uint64, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return float64(ticks) / userHZ / elapsed.Seconds() * 100
}
