package subnetfile

import (
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
