package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
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
