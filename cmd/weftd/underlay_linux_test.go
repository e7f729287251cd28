//go:build !unit

package main

import (
	"context"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/weftnet/weft/testbed"
)

// Issue 24 item 5: with no default route and no --iface weftd exited 1, so
// systemd restarted it forever; it is a configuration it cannot work with.
func TestUnderlayConfigErrors(t *testing.T) {
	tns := testbed.NSForTest(t, "wul")
	if out, err := tns.Run(context.Background(), "ip", "link", "set", "lo", "up"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, tc := range []struct{ iface, publicIP, want string }{
		{"", "", "no IPv4 default route"},
		{"", "192.0.2.77", "no IPv4 default route"},
		{"eth9", "", "--iface eth9: no such interface"},
		{"192.0.2.77", "", "no interface has address 192.0.2.77"},
		{"lo", "banana", `--public-ip "banana": not an IPv4 address`},
	} {
		err := ns.WithNetNSPath(tns.Path(), func(ns.NetNS) error {
			_, err := findUnderlay(tc.iface, tc.publicIP)
			return err
		})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--iface %q --public-ip %q: %v, want %q", tc.iface, tc.publicIP, err, tc.want)
			continue
		}
		if !isConfigError(err) || exitCode(err, false) != exitConfig {
			t.Errorf("--iface %q --public-ip %q: %v is not a configuration error (exit %d, want 78)",
				tc.iface, tc.publicIP, err, exitCode(err, false))
		}
	}
}
