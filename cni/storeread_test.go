package cni

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The address store's files are read bounded (issue 25 item 5: every
// read is bounded): weftd checks after a restart who holds an address
// (HeldBy) in a dataDir named by its endpoints file; a FIFO or a huge file
// there is an error, not a read that never ends.
func TestStoreReadsAreBounded(t *testing.T) {
	dir := t.TempDir()
	fifo := netip.MustParseAddr("10.244.7.9")
	if err := syscall.Mkfifo(filepath.Join(dir, fifo.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	huge := netip.MustParseAddr("10.244.7.10")
	if err := os.WriteFile(filepath.Join(dir, huge.String()), []byte("c1\r\neth0"+strings.Repeat(" ", maxStoreFile)), 0o644); err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[netip.Addr]string{fifo: "not a regular file", huge: "larger than 4096 bytes"} {
		if _, _, err := HeldBy(dir, addr); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("HeldBy(%s) = %v, want an error containing %q", addr, err, want)
		}
	}
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.List(); err == nil || !strings.Contains(err.Error(), "ipam store") {
		t.Errorf("List over a FIFO and a huge record: %v, want an error", err)
	}
	ok := netip.MustParseAddr("10.244.7.11")
	os.WriteFile(filepath.Join(dir, ok.String()), []byte("c2\r\neth0"), 0o644)
	if owner, held, err := HeldBy(dir, ok); err != nil || !held || owner.ContainerID != "c2" {
		t.Errorf("HeldBy(%s) = %+v %v %v", ok, owner, held, err)
	}
}
