//go:build !unit

package routing

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"
)

// IPv6 routes beside IPv4 ones: connected IPv6 prefixes (not link-local),
// an IPv6 subnet via an on-link IPv6 peer with an IPv6 source, a stale
// IPv6 route of ours deleted, one deleted by hand put back, a hand-made one
// left alone (blocked), and all of ours gone with Sync(nil).
func TestKernelSyncIPv6(t *testing.T) {
	k, ns := kernelInNS(t)
	run := func(args ...string) {
		t.Helper()
		if out, err := ns.Run(context.Background(), "ip", args...); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	run("-6", "addr", "add", "2001:db8:1::1/64", "dev", "eth0", "nodad")
	run("-6", "addr", "add", "fd10:244:0:7::/128", "dev", "lo")
	run("-6", "route", "add", "fd10:244:0:9::/64", "via", "2001:db8:1::9", "dev", "eth0", "proto", "119")
	run("-6", "route", "add", "fd10:244:0:3::/64", "via", "2001:db8:1::50", "dev", "eth0", "proto", "static")

	prefixes, err := k.OnLinkPrefixes()
	if err != nil || !slices.Contains(prefixes, netip.MustParsePrefix("2001:db8:1::/64")) ||
		!slices.Contains(prefixes, netip.MustParsePrefix("192.0.2.0/24")) || slices.ContainsFunc(prefixes, func(p netip.Prefix) bool { return p.Addr().IsLinkLocalUnicast() }) {
		t.Fatalf("OnLinkPrefixes = %v, %v", prefixes, err)
	}
	src6 := netip.MustParseAddr("fd10:244:0:7::")
	want := []Route{
		{Subnet: netip.MustParsePrefix("10.244.2.0/24"), Gateway: netip.MustParseAddr("192.0.2.2")},
		{Subnet: netip.MustParsePrefix("fd10:244:0:2::/64"), Gateway: netip.MustParseAddr("2001:db8:1::2"), Source: src6},
		{Subnet: netip.MustParsePrefix("fd10:244:0:3::/64"), Gateway: netip.MustParseAddr("2001:db8:1::3"), Source: src6},
	}
	c, err := k.Sync(want)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Blocked, want[2:]) || !slices.Equal(c.Added, want[:2]) || !slices.Equal(c.Deleted, []netip.Prefix{netip.MustParsePrefix("fd10:244:0:9::/64")}) {
		t.Fatalf("changes %+v", c)
	}
	show := func() string {
		out, err := ns.Run(context.Background(), "ip", "-6", "route", "show", "table", "main")
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if out := show(); !strings.Contains(out, "fd10:244:0:2::/64 via 2001:db8:1::2 dev eth0 proto 119 src fd10:244:0:7::") || strings.Contains(out, "fd10:244:0:9::") {
		t.Fatalf("IPv6 routes:\n%s", out)
	}
	run("-6", "route", "del", "fd10:244:0:2::/64", "proto", "119")
	if c, err := k.Sync(want); err != nil || !slices.Equal(c.Added, want[1:2]) {
		t.Fatalf("after a hand delete: %+v %v", c, err)
	}
	if c, err := k.Sync(want); err != nil || len(c.Added)+len(c.Deleted) != 0 {
		t.Fatalf("nothing to do: %+v %v", c, err)
	}
	if _, err := k.Sync([]Route{{Subnet: netip.MustParsePrefix("fd10:244:0:2::/64"), Gateway: netip.MustParseAddr("192.0.2.2")}}); err == nil {
		t.Fatal("an IPv6 subnet via an IPv4 gateway accepted")
	}
	if _, err := k.Sync(nil); err != nil {
		t.Fatal(err)
	}
	if out := show(); strings.Contains(out, "proto 119") || !strings.Contains(out, "fd10:244:0:3::/64 via 2001:db8:1::50") {
		t.Fatalf("after Sync(nil):\n%s", out)
	}
}

func TestSourceCheckIPv6(t *testing.T) {
	_, ns := kernelInNS(t)
	nsh, err := netns.GetFromPath(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer nsh.Close()
	v4only, err := NewSourceCheck("eth0", nftables.WithNetNSFd(int(nsh)))
	if err != nil {
		t.Fatal(err)
	}
	mac, _ := net.ParseMAC("02:00:00:00:00:02")
	if err := v4only.Set([]Binding{{Subnet: netip.MustParsePrefix("fd10:244:0:2::/64"), MAC: mac}}); err == nil {
		t.Fatal("an IPv6 binding accepted without the IPv6 table")
	}
	s, err := NewSourceCheckFor("eth0", true, nftables.WithNetNSFd(int(nsh)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]Binding{{Subnet: netip.MustParsePrefix("10.244.2.0/24"), MAC: mac}, {Subnet: netip.MustParsePrefix("fd10:244:0:2::/64"), MAC: mac}}); err != nil {
		t.Fatal(err)
	}
	out, err := ns.Run(context.Background(), "nft", "list", "table", "ip6", "weft-direct")
	want := `iifname "eth0" ip6 saddr fd10:244:0:2::/64 ether saddr != 02:00:00:00:00:02 counter name "wrong-l2-source" drop`
	if err != nil || !strings.Contains(out, want) {
		t.Fatalf("want %q in:\n%s (%v)", want, out, err)
	}
	if out, _ := ns.Run(context.Background(), "nft", "list", "table", "ip", "weft-direct"); !strings.Contains(out, "ip saddr 10.244.2.0/24") || strings.Contains(out, "fd10") {
		t.Fatalf("ip table:\n%s", out)
	}
	if n, err := s.Dropped(); err != nil || n != 0 {
		t.Fatalf("Dropped = %d, %v", n, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if out, err := ns.Run(context.Background(), "nft", "list", "tables"); err != nil || strings.Contains(out, "weft-direct") {
		t.Fatalf("tables left after Close: %q %v", out, err)
	}
}
