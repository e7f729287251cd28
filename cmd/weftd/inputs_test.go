package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftnet/weft/subnet/etcdtest"
)

// weftdArgs are the flags of an in-process weftd that touches nothing of
// the host before it exits: no health port, files and lock in dir.
func weftdArgs(dir string, extra ...string) []string {
	return append([]string{"--healthz-port", "0",
		"--subnet-file", filepath.Join(dir, "subnet.env"),
		"--lock-file", filepath.Join(dir, "weftd.lock"),
		"--cni-socket", filepath.Join(dir, "cni.sock"),
		"--endpoints-file", filepath.Join(dir, "endpoints.json")}, extra...)
}

// Issue 25 item 6: a Network holding this node's PublicIP is a
// configuration weftd cannot work with: exit 78 before it takes a lease,
// with a message naming both.
func TestRunRefusesNetworkHoldingPublicIP(t *testing.T) {
	srv := etcdtest.Start(t)
	var stderr strings.Builder
	code := run(weftdArgs(t.TempDir(), "--etcd-endpoints", srv.Endpoints()[0],
		"--iface", "lo", "--public-ip", "192.0.2.77", "--network-config", `{"Network":"192.0.0.0/16"}`), &stderr)
	if code != exitConfig || !strings.Contains(stderr.String(), "Network 192.0.0.0/16 contains this node's PublicIP 192.0.2.77") {
		t.Fatalf("exit code %d, want %d naming the Network and the PublicIP; log:\n%s", code, exitConfig, stderr.String())
	}
}

// Issue 25 item 5: the endpoints file is read only if it is a regular
// file of at most maxEndpointsFile bytes (--endpoints-file /dev/zero read
// until weftd was killed at 1.47 GB).
func TestLoadEndpointsFileIsBounded(t *testing.T) {
	big := filepath.Join(t.TempDir(), "endpoints.json")
	if err := os.WriteFile(big, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, maxEndpointsFile+1); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/dev/zero": "/dev/zero is not a regular file (a character device)",
		big:         "larger than 33554432 bytes (32 MiB)",
	} {
		if _, err := loadEndpointsFile(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("loadEndpointsFile(%s) = %v, want an error containing %q", path, err, want)
		}
	}
	if got, err := loadEndpointsFile(filepath.Join(t.TempDir(), "missing")); err != nil || len(got) != 0 {
		t.Errorf("a missing file: %v %v, want no records", got, err)
	}
}
