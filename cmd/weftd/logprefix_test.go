//go:build !unit

package main

import (
	"strings"
	"testing"
)

func TestJournalPriorityPrefixes(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var out strings.Builder
		log, err := newLogger(&out, format, "debug", true)
		if err != nil {
			t.Fatal(err)
		}
		sub := log.With("component", "overlay").WithGroup("g")
		log.Debug("d")
		log.Info("i")
		sub.Warn("w", "k", "multi\nline")
		log.Error("e")
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		want := []string{"<7>", "<6>", "<4>", "<3>"}
		if len(lines) != len(want) {
			t.Fatalf("%s: %d lines, want %d:\n%s", format, len(lines), len(want), out.String())
		}
		for i, l := range lines {
			if !strings.HasPrefix(l, want[i]) {
				t.Errorf("%s: line %d %q lacks prefix %s", format, i, l, want[i])
			}
			if rest := strings.TrimPrefix(l, want[i]); format == "json" && !strings.HasPrefix(rest, "{") ||
				format == "text" && !strings.HasPrefix(rest, "time=") {
				t.Errorf("%s: line %d %q: the format after the prefix changed", format, i, l)
			}
		}
		if !strings.Contains(lines[2], "component") {
			t.Errorf("%s: derived logger lost its attributes: %q", format, lines[2])
		}
	}
}

func TestNoPrefixOffTheJournal(t *testing.T) {
	var out strings.Builder
	log, err := newLogger(&out, "text", "info", false)
	if err != nil {
		t.Fatal(err)
	}
	log.Warn("w")
	if !strings.HasPrefix(out.String(), "time=") {
		t.Fatalf("prefix written when stderr is not the journal: %q", out.String())
	}
	if stderrIsJournal(&out) {
		t.Fatal("a strings.Builder taken for the journal")
	}
}
