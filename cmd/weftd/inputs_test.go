//go:build !unit

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

// Issue 20: flannel's MTU override (Backend.MTU) out of range, for any
// backend, and the vxlan backend's VNI or Port out of range are
// configuration errors: exit 78 before weftd touches etcd or
// the host, with a message naming the field.
func TestRunRefusesMTUOutOfRange(t *testing.T) {
	for _, tc := range []struct{ backend, want string }{
		{`{"Type":"udp","MTU":575}`, "Backend.MTU 575 out of range [576, 65535]"},
		{`{"Type":"udp","MTU":65536}`, "Backend.MTU 65536 out of range"},
		{`{"Type":"udp","MTU":"1400"}`, "Backend.MTU: want an integer"},
		{`{"Type":"udp","MTU":600}`, "would get MTU 568, out of range [576, 65503]"},
		{`{"Type":"host-gw","MTU":65535}`, "would get MTU 65535, out of range [576, 65503]"},
		{`{"Type":"vxlan","MTU":600}`, "Backend.MTU 600 out of range [626, 65535]"},
		{`{"Type":"wireguard","MTU":600}`, "would get MTU 540, out of range [576, 65503]"},
		// The vxlan backend's other ranges (issue 20, bad input).
		{`{"Type":"vxlan","VNI":16777216}`, "Backend.VNI 16777216 out of range [0, 16777215]"},
		{`{"Type":"vxlan","VNI":-1}`, "Backend.VNI -1 out of range"},
		{`{"Type":"vxlan","Port":65536}`, "Backend.Port 65536 out of range"},
	} {
		var stderr strings.Builder
		code := run(weftdArgs(t.TempDir(), "--etcd-endpoints", "http://192.0.2.1:2379", "--iface", "lo", "--public-ip", "192.0.2.77",
			"--network-config", `{"Network":"10.244.0.0/16","Backend":`+tc.backend+`}`), &stderr)
		if code != exitConfig || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("Backend %s: exit code %d, want %d saying %q; log:\n%s", tc.backend, code, exitConfig, tc.want, stderr.String())
		}
	}
}
