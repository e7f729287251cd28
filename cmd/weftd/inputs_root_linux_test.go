//go:build !unit

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// charDevice makes a character device node (the same as /dev/zero) in a
// temporary directory, so that a regression replaces only that node.
func charDevice(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "zero")
	if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5))); err != nil {
		t.Fatalf("mknod (needs root): %v", err)
	}
	return p
}

// Issue 25 item 5: weftd's own files pointing at a device or a FIFO: exit
// 78 naming the flag, before etcd (unreachable here) and without touching
// the node (it replaced a host's /dev/zero with its subnet file).
func TestRunRefusesNonRegularOwnFiles(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ flag, path string }{
		{"--subnet-file", charDevice(t)},
		{"--flannel-subnet-file", charDevice(t)},
		{"--endpoints-file", charDevice(t)},
		{"--lock-file", charDevice(t)},
		{"--subnet-file", fifo},
	} {
		t.Run(tc.flag, func(t *testing.T) {
			var stderr strings.Builder
			code := run(weftdArgs(t.TempDir(), "--etcd-endpoints", "http://127.0.0.1:1", tc.flag, tc.path), &stderr)
			if code != exitConfig || !strings.Contains(stderr.String(), tc.flag+": "+tc.path+" is not a regular file") {
				t.Errorf("exit code %d, want %d naming %s; log:\n%s", code, exitConfig, tc.flag, stderr.String())
			}
			if fi, err := os.Stat(tc.path); err != nil || fi.Mode().IsRegular() {
				t.Errorf("%s was replaced: %v %v", tc.path, fi.Mode(), err)
			}
		})
	}
}
