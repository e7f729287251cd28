//go:build !unit

package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftnet/weft/testbed"
)

// weftd refuses a subnet file on a read-only file system with exit code 78
// before it connects to etcd (the etcd endpoint here does not exist); the
// check itself: writecheck.TestCheck.
func TestRunRefusesReadOnlySubnetFile(t *testing.T) {
	testbed.InReadOnlyDir(t, func(ro string) {
		var stderr strings.Builder
		code := run([]string{"--subnet-file", filepath.Join(ro, "subnet.env"), "--healthz-port", "0",
			"--etcd-endpoints", "http://127.0.0.1:1"}, &stderr)
		if code != exitConfig || !strings.Contains(stderr.String(), "read-only file system") {
			t.Errorf("exit code %d, want %d with a read-only error; log:\n%s", code, exitConfig, stderr.String())
		}
	})
}
