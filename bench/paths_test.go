//go:build !unit

package main

import (
	"strings"
	"testing"
)

func TestParseExtraAddrs(t *testing.T) {
	p, err := parseExtraAddrs("setting up...\n10.0.0.1 10.0.0.2\n")
	if err != nil || p.A.String() != "10.0.0.1" || p.B.String() != "10.0.0.2" {
		t.Fatalf("parseExtraAddrs = %+v %v", p, err)
	}
	// Two addresses: no IPv6 endpoints, and the reason for the empty cell.
	if p.A6.IsValid() || p.B6.IsValid() || !strings.Contains(p.No6, "no IPv6 endpoints") {
		t.Errorf("IPv4-only extra path: A6 %v B6 %v No6 %q", p.A6, p.B6, p.No6)
	}
	p, err = parseExtraAddrs("10.0.0.1 10.0.0.2 fd00::1 fd00::2")
	if err != nil || p.A6.String() != "fd00::1" || p.B6.String() != "fd00::2" || p.No6 != "" {
		t.Errorf("dual-stack extra path = %+v %v", p, err)
	}
	for _, bad := range []string{"", "10.0.0.1", "10.0.0.1 x", "1 2 3", "10.0.0.1 10.0.0.2 fd00::1",
		"10.0.0.1 10.0.0.2 10.0.0.3 10.0.0.4", "10.0.0.1 10.0.0.2 fd00::1 ::ffff:10.0.0.4", "10.0.0.1 10.0.0.2 fd00::1 x"} {
		if _, err := parseExtraAddrs(bad); err == nil {
			t.Errorf("parseExtraAddrs(%q): no error", bad)
		}
	}
}

func TestParseExtra(t *testing.T) {
	name, cmd, err := parseExtra("wg=./setup-wg.sh --mtu=1420")
	if err != nil || name != "wg" || cmd != "./setup-wg.sh --mtu=1420" {
		t.Errorf("parseExtra = %q %q %v", name, cmd, err)
	}
	for _, bad := range []string{"wg", "=cmd", "wg=", "weft=x", "raw=x", "weft-vxlan=x", "flannel-udp=x"} {
		if _, _, err := parseExtra(bad); err == nil {
			t.Errorf("parseExtra(%q): no error", bad)
		}
	}
}
