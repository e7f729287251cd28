package workload

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// A long key and a long reason are cut in the line; values beyond the
// burst go into one summary line naming their count.
func TestBadValueLogCutsAndSummarises(t *testing.T) {
	var out bytes.Buffer
	b := &badValueLog{log: slog.New(slog.NewTextHandler(&out, nil))}
	key := []byte("/weft/network/endpoints/" + strings.Repeat("k", 100<<10))
	reason := "malformed endpoint value: " + strings.Repeat("r", 100<<10)
	for range badValueBurst + 7 {
		b.report(KindAttachment, key, "ignoring malformed endpoint", reason)
	}
	b.mu.Lock()
	b.flushLocked()
	b.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != badValueBurst+1 {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), badValueBurst+1, out.String())
	}
	for _, l := range lines {
		if len(l) > 1024 {
			t.Fatalf("a line of %d bytes", len(l))
		}
	}
	if !strings.Contains(lines[0], `(102424 bytes)`) || !strings.Contains(lines[badValueBurst], "count=7") {
		t.Fatalf("key not cut with its length, or no summary of 7:\n%s", out.String())
	}
	if got := b.counts[0].Load(); got != badValueBurst+7 {
		t.Fatalf("counted %d", got)
	}
}
