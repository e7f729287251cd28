//go:build !unit

package main

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteChartIsAPNG(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bench.png")
	if err := writeChart(sampleResults(), "test chart", file); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 1000 || b.Dy() < 700 {
		t.Errorf("chart is only %dx%d pixels", b.Dx(), b.Dy())
	}
}
