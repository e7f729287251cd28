package main

import "sort"

// summary is the median and spread of a metric's samples.
type summary struct {
	N      int     `json:"n"`
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

func summarize(samples []float64) summary {
	if len(samples) == 0 {
		return summary{}
	}
	sorted := append([]float64(nil), samples...)
	sort.Float64s(sorted)
	n := len(sorted)
	med := sorted[n/2]
	if n%2 == 0 {
		med = (sorted[n/2-1] + sorted[n/2]) / 2
	}
	return summary{N: n, Median: med, Min: sorted[0], Max: sorted[n-1]}
}

// ratio is a/b of two medians; false when either is missing or b is zero.
func ratio(a, b summary) (float64, bool) {
	if a.N == 0 || b.N == 0 || b.Median == 0 {
		return 0, false
	}
	return a.Median / b.Median, true
}
