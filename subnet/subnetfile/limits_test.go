package subnetfile

import (
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Read refuses what is not a small regular file instead of reading it all
// (issue 11, item 10: subnetFile /dev/zero ran the CNI plugin out of memory).
func TestReadRefusesNonRegularAndHugeFiles(t *testing.T) {
	dir := t.TempDir()
	good := "WEFT_NETWORK=10.244.0.0/16\nWEFT_SUBNET=10.244.7.1/24\nWEFT_MTU=1468\nWEFT_IPMASQ=false\n"
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	padded := good + "#" + strings.Repeat("x", MaxSize-len(good)-2) + "\n"
	if len(padded) != MaxSize {
		t.Fatalf("test setup: padded file is %d bytes", len(padded))
	}
	if _, err := Read(write("max.env", padded)); err != nil {
		t.Fatalf("a file of exactly MaxSize bytes: %v", err)
	}
	for _, tc := range []struct{ name, path, want string }{
		{"device", "/dev/zero", "not a regular file"},
		{"fifo", fifo, "not a regular file"},
		{"directory", dir, "not a regular file"},
		{"huge", write("huge.env", padded+"#\n"), "larger than 4096 bytes"},
		{"mtu above the outer packet", write("mtu.env", strings.Replace(good, "1468", strconv.Itoa(MaxMTU+1), 1)), "WEFT_MTU 65504 out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read(tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Read(%s) = %v, want an error containing %q", tc.path, err, tc.want)
			}
		})
	}
	if _, err := Read(write("mtu-max.env", strings.Replace(good, "1468", strconv.Itoa(MaxMTU), 1))); err != nil {
		t.Fatalf("MTU %d: %v", MaxMTU, err)
	}
}

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
