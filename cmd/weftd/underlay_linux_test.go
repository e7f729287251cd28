//go:build !unit

package main

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/underlay"
)

const (
	v4Net   = `{"Network":"10.244.0.0/16"}`
	dualNet = `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:244::/56"}`
	v6Net   = `{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd10:244::/56"}`
)

func findIn(t *testing.T, tns *testbed.NS, network, iface, publicIP, publicIPv6 string) (underlay.Underlay, error) {
	t.Helper()
	cfg, err := subnet.ParseConfig([]byte(network))
	if err != nil {
		t.Fatal(err)
	}
	d := &weftd{opts: &options{iface: iface, publicIP: publicIP, publicIPv6: publicIPv6}}
	var u underlay.Underlay
	err = ns.WithNetNSPath(tns.Path(), func(ns.NetNS) error {
		u, err = d.findUnderlay(cfg)
		return err
	})
	return u, err
}

// Issue 24 item 5: with no default route and no --iface weftd exited 1, so
// systemd restarted it forever; it is a configuration it cannot work with.
// Issue 21: the same for --public-ipv6 and IPv6-only networks.
func TestUnderlayConfigErrors(t *testing.T) {
	tns := testbed.NSForTest(t, "wul")
	if out, err := tns.Run(context.Background(), "ip", "link", "set", "lo", "up"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, tc := range []struct{ network, iface, publicIP, publicIPv6, want string }{
		{v4Net, "", "", "", "no default route (IPv4 or IPv6)"},
		{v4Net, "", "192.0.2.77", "", "no default route"},
		{v4Net, "eth9", "", "", "--iface eth9: no such interface"},
		{v4Net, "192.0.2.77", "", "", "no interface has address 192.0.2.77"},
		{v4Net, "lo", "banana", "", `--public-ip "banana": not an IPv4 address`},
		{v4Net, "lo", "2001:db8::1", "", `--public-ip "2001:db8::1": not an IPv4 address (an IPv6 one goes in --public-ipv6)`},
		{dualNet, "lo", "", "192.0.2.1", `--public-ipv6 "192.0.2.1": not an IPv6 address`},
		{dualNet, "lo", "", "fe80::1", "--public-ipv6 fe80::1: not a global unicast address"},
		{dualNet, "lo", "", "ff02::1", "--public-ipv6 ff02::1: not a global unicast address"},
		{v6Net, "lo", "192.0.2.1", "", "the network is IPv6-only (EnableIPv4 false) and interface lo has no global IPv6 address: set --public-ipv6"},
		{dualNet, "lo", "192.0.2.1", "fd10:244:0:7::1", "IPv6Network fd10:244::/56 contains this node's PublicIP fd10:244:0:7::1"},
	} {
		_, err := findIn(t, tns, tc.network, tc.iface, tc.publicIP, tc.publicIPv6)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s --iface %q --public-ip %q --public-ipv6 %q: %v, want %q", tc.network, tc.iface, tc.publicIP, tc.publicIPv6, err, tc.want)
			continue
		}
		if !isConfigError(err) || exitCode(err, false) != exitConfig {
			t.Errorf("--iface %q --public-ip %q: %v is not a configuration error (exit %d, want 78)",
				tc.iface, tc.publicIP, err, exitCode(err, false))
		}
	}
}

// The IPv6 public address: the interface's first global one when the
// network has IPv6, none in an IPv4 network, the only one on an IPv6-only
// underlay.
func TestUnderlayIPv6Addresses(t *testing.T) {
	tns := testbed.NSForTest(t, "wu6")
	ctx := context.Background()
	for _, args := range [][]string{
		{"ip", "link", "add", "u0", "type", "veth", "peer", "name", "u1"},
		{"ip", "link", "add", "o0", "type", "veth", "peer", "name", "o1"},
		{"ip", "addr", "add", "192.0.2.5/24", "dev", "u0"},
		{"ip", "addr", "add", "2001:db8::5/64", "dev", "u0", "nodad"},
		{"ip", "addr", "add", "2001:db8::6/64", "dev", "u0", "nodad"},
		{"ip", "addr", "add", "2001:db8:1::5/64", "dev", "o0", "nodad"},
		{"ip", "link", "set", "u0", "up"},
		{"ip", "link", "set", "o0", "up"},
	} {
		if out, err := tns.Run(ctx, args[0], args[1:]...); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	for _, tc := range []struct {
		network, iface, publicIPv6 string
		v4, v6                     string
	}{
		{v4Net, "u0", "", "192.0.2.5", ""},
		{dualNet, "u0", "", "192.0.2.5", "2001:db8::6"}, // the kernel lists the newest first
		{dualNet, "u0", "2001:db8::5", "192.0.2.5", "2001:db8::5"},
		{dualNet, "2001:db8::5", "", "192.0.2.5", "2001:db8::6"},
		{v6Net, "u0", "", "", "2001:db8::6"},   // reached over IPv6 only, as flanneld
		{v4Net, "o0", "", "", "2001:db8:1::5"}, // an IPv6-only underlay
		{dualNet, "o0", "", "", "2001:db8:1::5"},
		{v6Net, "o0", "", "", "2001:db8:1::5"},
	} {
		u, err := findIn(t, tns, tc.network, tc.iface, "", tc.publicIPv6)
		if err != nil {
			t.Errorf("%s --iface %s: %v", tc.network, tc.iface, err)
			continue
		}
		if addrText(u.PublicIP) != tc.v4 || addrText(u.PublicIPv6) != tc.v6 {
			t.Errorf("%s --iface %s --public-ipv6 %q: PublicIP %q PublicIPv6 %q, want %q %q", tc.network, tc.iface, tc.publicIPv6, addrText(u.PublicIP), addrText(u.PublicIPv6), tc.v4, tc.v6)
		}
	}
}

func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
