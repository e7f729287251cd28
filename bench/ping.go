package main

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// parsePingRTTs returns the round-trip times in microseconds of every
// reply line ("... time=0.045 ms") in ping's output.
func parsePingRTTs(out string) ([]float64, error) {
	var rtts []float64
	for _, line := range strings.Split(out, "\n") {
		i := strings.Index(line, "time=")
		if i < 0 {
			continue
		}
		field := strings.Fields(line[i+len("time="):])
		if len(field) == 0 {
			continue
		}
		ms, err := strconv.ParseFloat(field[0], 64)
		if err != nil {
			return nil, fmt.Errorf("ping: bad time in %q: %w", line, err)
		}
		unit := "ms"
		if len(field) > 1 {
			unit = field[1]
		}
		switch unit {
		case "ms":
			rtts = append(rtts, ms*1000)
		case "us", "µs":
			rtts = append(rtts, ms)
		case "s":
			rtts = append(rtts, ms*1e6)
		default:
			return nil, fmt.Errorf("ping: unknown unit in %q", line)
		}
	}
	if len(rtts) == 0 {
		return nil, errors.New("ping: no replies")
	}
	return rtts, nil
}

// percentile is the nearest-rank percentile p (0..100) of values.
func percentile(values []float64, p float64) float64 {
	if len(values) == 0 {
		return 0
	}
	sorted := append([]float64(nil), values...)
	sort.Float64s(sorted)
	rank := int(p/100*float64(len(sorted))+0.999999999) - 1
	if rank < 0 {
		rank = 0
	}
	if rank >= len(sorted) {
		rank = len(sorted) - 1
	}
	return sorted[rank]
}
