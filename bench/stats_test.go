//go:build !unit

package main

import "testing"

func TestSummarize(t *testing.T) {
	cases := []struct {
		in   []float64
		want summary
	}{
		{nil, summary{}},
		{[]float64{4}, summary{N: 1, Median: 4, Min: 4, Max: 4}},
		{[]float64{3, 1, 2}, summary{N: 3, Median: 2, Min: 1, Max: 3}},
		{[]float64{10, 1, 4, 2}, summary{N: 4, Median: 3, Min: 1, Max: 10}},
		{[]float64{5, 5, 9, 1, 5}, summary{N: 5, Median: 5, Min: 1, Max: 9}},
	}
	for _, c := range cases {
		if got := summarize(c.in); got != c.want {
			t.Errorf("summarize(%v) = %+v, want %+v", c.in, got, c.want)
		}
	}
	in := []float64{3, 1, 2}
	summarize(in)
	if in[0] != 3 || in[1] != 1 {
		t.Errorf("summarize reordered its input: %v", in)
	}
}

func TestRatio(t *testing.T) {
	a, b := summarize([]float64{2, 3, 4}), summarize([]float64{6})
	if v, ok := ratio(a, b); !ok || v != 0.5 {
		t.Errorf("ratio = %v %v, want 0.5", v, ok)
	}
	if _, ok := ratio(a, summary{}); ok {
		t.Error("ratio with a missing reference is defined")
	}
	if _, ok := ratio(a, summarize([]float64{0})); ok {
		t.Error("ratio with a zero reference is defined")
	}
}

func TestPercentile(t *testing.T) {
	var values []float64
	for i := 100; i >= 1; i-- {
		values = append(values, float64(i))
	}
	for p, want := range map[float64]float64{50: 50, 99: 99, 100: 100, 1: 1, 0: 1} {
		if got := percentile(values, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if got := percentile([]float64{7, 3, 5}, 50); got != 5 {
		t.Errorf("p50 of 3 = %v, want 5", got)
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %v", got)
	}
}

func TestNextFixedRate(t *testing.T) {
	if pps, done := nextFixedRate(1000, 0.5, 0); !done || pps != 1000 {
		t.Fatalf("low loss: %v %v, want 1000 and done", pps, done)
	}
	if pps, done := nextFixedRate(1000, 5, 0); done || pps != 700 {
		t.Fatalf("high loss: %v %v, want 700 and not done", pps, done)
	}
	if pps, done := nextFixedRate(1000, 5, fixedRateTries-1); !done || pps != 1000 {
		t.Fatalf("last try: %v %v, want the rate kept and done", pps, done)
	}
}
