package cluster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftnet/weft/testbed"
)

// A cluster that runs weftd only (the benchmark's) needs weftd alone in
// Bin; one that attaches containers needs weftctl and the plugin too, and
// says which one is missing.
func TestNewChecksTheBinariesItRuns(t *testing.T) {
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "weftd"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	bed := &testbed.Bed{Hosts: []*testbed.Host{{}}} // New only prepares a directory per host
	c, err := New(bed, Options{Bin: bin, WorkDir: t.TempDir(), DaemonOnly: true})
	if err != nil {
		t.Fatalf("DaemonOnly with weftd alone: %v", err)
	}
	// Attaching a container to it fails clearly, before cnitool runs.
	if _, err := c.Nodes[0].cnitool(context.Background(), "add", nil, "", ""); err == nil || !strings.Contains(err.Error(), "DaemonOnly") {
		t.Errorf("cnitool on a DaemonOnly cluster: %v", err)
	}
	_, err = New(bed, Options{Bin: bin, WorkDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "weftctl not built") {
		t.Errorf("without weftctl and weft: %v, want weftctl named", err)
	}
	empty := t.TempDir()
	_, err = New(bed, Options{Bin: empty, WorkDir: t.TempDir(), DaemonOnly: true})
	if err == nil || !strings.Contains(err.Error(), "weftd not built") {
		t.Errorf("DaemonOnly without weftd: %v, want weftd named", err)
	}
}
