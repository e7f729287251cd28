package main

import (
	"fmt"
	"math"
	"strings"
)

// markdownTable renders one row per metric: each path's median with its
// min-max spread, then weft/VXLAN and weft/raw ratios of the medians.
func markdownTable(r *results) string {
	var b strings.Builder
	header := []string{"metric"}
	for _, p := range r.Paths {
		header = append(header, pathLabel(p))
	}
	header = append(header, "weft/VXLAN", "weft/raw")
	writeRow(&b, header)
	sep := make([]string, len(header))
	sep[0] = "---"
	for i := 1; i < len(sep); i++ {
		sep[i] = "---:"
	}
	writeRow(&b, sep)
	for _, m := range allMetrics {
		row := []string{fmt.Sprintf("%s (%s)", m.Name, m.Unit)}
		for _, p := range r.Paths {
			row = append(row, formatSummary(r.summary(p, m.Key)))
		}
		weft := r.summary(pathWeft, m.Key)
		row = append(row, formatRatio(weft, r.summary(pathVXLAN, m.Key)), formatRatio(weft, r.summary(pathRaw, m.Key)))
		writeRow(&b, row)
	}
	return b.String()
}

func writeRow(b *strings.Builder, cells []string) {
	b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
}

func formatSummary(s summary) string {
	if s.N == 0 {
		return "–"
	}
	if s.N == 1 {
		return formatValue(s.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", formatValue(s.Median), formatValue(s.Min), formatValue(s.Max))
}

func formatRatio(a, b summary) string {
	v, ok := ratio(a, b)
	if !ok {
		return "–"
	}
	return fmt.Sprintf("%.2f×", v)
}

// formatValue keeps three significant digits.
func formatValue(v float64) string {
	abs := math.Abs(v)
	switch {
	case v == 0:
		return "0"
	case abs >= 100:
		return fmt.Sprintf("%.0f", v)
	case abs >= 10:
		return fmt.Sprintf("%.1f", v)
	case abs >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}
