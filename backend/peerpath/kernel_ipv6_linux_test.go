//go:build !unit

package peerpath

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/weftnet/weft/routing"
	"github.com/weftnet/weft/subnet"
)

// host-gw in both families against the real kernel: IPv4 and IPv6 routes
// with their sources, a peer without a PublicIPv6 reachable over IPv4
// only, a route deleted by hand put back by Repair, all gone with Clear.
func TestPeerPathsHostGWIPv6(t *testing.T) {
	k, ns := kernelInNS(t)
	for _, args := range [][]string{
		{"-6", "addr", "add", "2001:db8:1::1/64", "dev", "eth0", "nodad"},
		{"addr", "add", "10.244.9.0/32", "dev", "lo"},
		{"-6", "addr", "add", "fd10:244:0:9::/128", "dev", "lo", "nodad"},
	} {
		if out, err := ns.Run(context.Background(), "ip", args...); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	table, routes := newDualTable(t, true), k
	onLink, err := k.OnLinkPrefixes()
	if err != nil {
		t.Fatal(err)
	}
	p := New(Config{Policy: routing.Policy{HostGW: true}, OnLink: onLink, Table: table, Routes: routes,
		Source: netip.MustParseAddr("10.244.9.0"), Source6: netip.MustParseAddr("fd10:244:0:9::"), Log: quiet()})
	p.Apply([]subnet.Lease{
		lease6("10.244.1.0/24", "fd10:244:0:1::/64", "192.0.2.2", "2001:db8:1::2"),
		lease6("10.244.2.0/24", "fd10:244:0:2::/64", "192.0.2.3", ""),
	}, nil)
	show := func() string {
		out, err := ns.Run(context.Background(), "ip", "-6", "route", "show", "proto", "119")
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if out := show(); !strings.Contains(out, "fd10:244:0:1::/64 via 2001:db8:1::2 dev eth0 src fd10:244:0:9::") || strings.Contains(out, "fd10:244:0:2::") {
		t.Fatalf("IPv6 routes:\n%s", out)
	}
	if out, _ := ns.Run(context.Background(), "ip", "-4", "route", "show", "proto", "119"); !strings.Contains(out, "10.244.1.0/24 via 192.0.2.2") || !strings.Contains(out, "10.244.2.0/24 via 192.0.2.3") {
		t.Fatalf("IPv4 routes:\n%s", out)
	}
	if v := p.View(); len(v) != 2 || v[1].Mode6 != routing.ModeUnreachable {
		t.Fatalf("view %+v", v)
	}
	if out, err := ns.Run(context.Background(), "ip", "-6", "route", "del", "fd10:244:0:1::/64", "proto", "119"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	p.Repair()
	if out := show(); !strings.Contains(out, "fd10:244:0:1::/64 via 2001:db8:1::2") {
		t.Fatalf("IPv6 route not put back:\n%s", out)
	}
	p.Clear()
	if r, err := k.Owned(); err != nil || len(r) != 0 {
		t.Fatalf("after Clear: %v %v", r, err)
	}
}
