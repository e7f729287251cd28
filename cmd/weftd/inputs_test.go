package main

import (
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
