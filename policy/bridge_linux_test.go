package policy

import (
	"os"
	"path/filepath"
	"testing"
)

func TestBridgeNetfilterLoaded(t *testing.T) {
	root := t.TempDir()
	if BridgeNetfilterLoaded(root) {
		t.Fatal("loaded without the file")
	}
	dir := filepath.Join(root, "sys", "net", "bridge")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bridge-nf-call-iptables"), []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if !BridgeNetfilterLoaded(root) {
		t.Fatal("not loaded with the file")
	}
	// This machine's kernel: the e2e policy tests need it.
	if !BridgeNetfilterLoaded("/proc") {
		t.Fatal("br_netfilter is not loaded here: same-host policy tests cannot pass (modprobe br_netfilter)")
	}
}
