package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUpdateDocsReplacesOrAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "benchmarks.md")
	if err := os.WriteFile(path, []byte("# Benchmarks\n\ntable\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	first := sectionBegin + "\n## Network policy\nrun 1\n" + sectionEnd + "\n"
	if err := updateDocs(path, first); err != nil {
		t.Fatal(err)
	}
	second := sectionBegin + "\n## Network policy\nrun 2\n" + sectionEnd + "\n"
	if err := updateDocs(path, second); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := string(data)
	if !strings.HasPrefix(got, "# Benchmarks\n\ntable\n\n") || strings.Contains(got, "run 1") || strings.Count(got, "run 2") != 1 || strings.Count(got, sectionBegin) != 1 {
		t.Fatalf("document:\n%s", got)
	}
}

func TestPoliciesAreValid(t *testing.T) {
	ps, err := policies(3)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 50 {
		t.Fatalf("%d policies, want 50", len(ps))
	}
	for _, p := range ps {
		if err := p.Validate(); err != nil {
			t.Fatal(err)
		}
	}
}
