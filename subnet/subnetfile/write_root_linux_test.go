//go:build !unit

package subnetfile

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Write never replaces what is not a regular file (issue 25 item 5: weftd
// renamed its subnet file over a host's /dev/zero); a link to a regular
// file is replaced as before.
func TestWriteRefusesNonRegularTarget(t *testing.T) {
	dir := t.TempDir()
	dev := filepath.Join(dir, "zero")
	if err := syscall.Mknod(dev, syscall.S_IFCHR|0o666, 1<<8|5); err != nil {
		t.Fatalf("mknod (needs root): %v", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	env := Env{Network: netip.MustParsePrefix("10.244.0.0/16"), Subnet: netip.MustParsePrefix("10.244.7.1/24"), MTU: 1468}
	for _, p := range []string{dev, fifo, dir} {
		if err := Write(p, env); err == nil || !strings.Contains(err.Error(), "is not a regular file") {
			t.Errorf("Write(%s) = %v, want a refusal", p, err)
		}
		if err := WriteFlannel(p, env); err == nil {
			t.Errorf("WriteFlannel(%s) replaced it", p)
		}
		if fi, err := os.Stat(p); err != nil || fi.Mode().IsRegular() {
			t.Errorf("%s was replaced: %v", p, err)
		}
	}
	target := filepath.Join(dir, "real.env")
	os.WriteFile(target, nil, 0o644)
	link := filepath.Join(dir, "link.env")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := Write(link, env); err != nil {
		t.Fatalf("a link to a regular file: %v", err)
	}
	if got, err := Read(link); err != nil || got != env {
		t.Fatalf("read back %+v %v", got, err)
	}
}
