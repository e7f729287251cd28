package peerpath

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/weftnet/weft/overlay"
	"github.com/weftnet/weft/routing"
	"github.com/weftnet/weft/subnet"
)

// lease6 is a udp lease of a dual-stack (sub4 set) or IPv6-only network;
// ip or ip6 may be "" (none).
func lease6(sub4, sub6, ip, ip6 string) subnet.Lease {
	l := subnet.Lease{IPv6Subnet: netip.MustParsePrefix(sub6), Attrs: subnet.LeaseAttrs{PublicIP: ip, PublicIPv6: ip6, BackendType: subnet.BackendUDP,
		BackendData: []byte(`{"Port":8285}`)}}
	if sub4 != "" {
		l.Subnet = netip.MustParsePrefix(sub4)
	}
	return l
}

func newDualTable(t *testing.T, ipv4 bool) *overlay.PeerTable {
	t.Helper()
	c := overlay.TableConfig{IPv6Network: netip.MustParsePrefix("fd10:244::/56"), IPv6SubnetLen: 64}
	if ipv4 {
		c.Network, c.SubnetLen = netip.MustParsePrefix("10.244.0.0/16"), 24
	}
	table, err := overlay.NewPeerTableFor(c)
	if err != nil {
		t.Fatal(err)
	}
	return table
}

// describe6 renders each path (key, modes, endpoint), where its subnets
// go in the table and weft's routes for them.
func describe6(t *testing.T, p *Paths, table *overlay.PeerTable, routes *fakeRoutes) string {
	t.Helper()
	var owned []routing.Route
	if routes != nil {
		owned, _ = routes.Owned()
	}
	var out []string
	for _, pp := range p.View() {
		s := fmt.Sprintf("%s %s/%s %s", pp.Key(), pp.Mode, pp.Mode6, pp.Endpoint())
		for _, sub := range []netip.Prefix{pp.Subnet, pp.IPv6Subnet} {
			if !sub.IsValid() {
				continue
			}
			if peer := table.Lookup(sub.Addr().Next()); peer != nil {
				s += fmt.Sprintf(" table[%s]=%s", sub, peer.Endpoint)
			}
			if i := slices.IndexFunc(owned, func(r routing.Route) bool { return r.Subnet == sub }); i >= 0 {
				s += fmt.Sprintf(" route[%s]=%s", sub, owned[i].Gateway)
				if owned[i].Source.IsValid() {
					s += " src=" + owned[i].Source.String()
				}
				owned = slices.Delete(owned, i, i+1)
			}
		}
		out = append(out, s)
	}
	for _, r := range owned {
		out = append(out, "stray route "+r.String())
	}
	return strings.Join(out, "; ")
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Plain udp, dual stack over an IPv4 underlay: each lease becomes one peer
// in both families' slots, at its IPv4 PublicIP; a lease without an IPv4
// PublicIP is left out; removal clears both slots.
func TestPeerPathsDualStackUDP(t *testing.T) {
	table := newDualTable(t, true)
	p := New(Config{Table: table, Log: quiet()})
	a := lease6("10.244.1.0/24", "fd10:244:0:1::/64", "192.0.2.2", "2001:db8:1::2")
	b := lease6("10.244.2.0/24", "fd10:244:0:2::/64", "", "2001:db8:1::3")
	p.Apply([]subnet.Lease{a, b}, nil)
	want := "10.244.1.0/24 udp/udp 192.0.2.2:8285 table[10.244.1.0/24]=192.0.2.2:8285 table[fd10:244:0:1::/64]=192.0.2.2:8285"
	if got := describe6(t, p, table, nil); got != want {
		t.Fatalf("\n got  %s\n want %s", got, want)
	}
	p.Apply(nil, []subnet.Event{removed(a)})
	if got := describe6(t, p, table, nil); got != "" || table.Lookup(netip.MustParseAddr("fd10:244:0:1::9")) != nil {
		t.Fatalf("after removal: %q", got)
	}
}

// An IPv6-only network over an IPv6 underlay: leases known by their IPv6
// subnet, peers at [PublicIPv6]:port, events keyed by the IPv6 subnet.
func TestPeerPathsIPv6Only(t *testing.T) {
	table := newDualTable(t, false)
	p := New(Config{Table: table, UnderlayIPv6: true, Log: quiet()})
	a := lease6("", "fd10:244:0:1::/64", "", "2001:db8:1::2")
	b := lease6("", "fd10:244:0:2::/64", "192.0.2.3", "") // no PublicIPv6: left out
	p.Apply([]subnet.Lease{a, b}, nil)
	want := "fd10:244:0:1::/64 udp/udp [2001:db8:1::2]:8285 table[fd10:244:0:1::/64]=[2001:db8:1::2]:8285"
	if got := describe6(t, p, table, nil); got != want {
		t.Fatalf("\n got  %s\n want %s", got, want)
	}
	moved := lease6("", "fd10:244:0:1::/64", "", "2001:db8:1::9")
	p.Apply(nil, []subnet.Event{added(moved), added(lease6("", "fd10:244:0:3::/64", "", "2001:db8:1::3"))})
	want = "fd10:244:0:1::/64 udp/udp [2001:db8:1::9]:8285 table[fd10:244:0:1::/64]=[2001:db8:1::9]:8285; " +
		"fd10:244:0:3::/64 udp/udp [2001:db8:1::3]:8285 table[fd10:244:0:3::/64]=[2001:db8:1::3]:8285"
	if got := describe6(t, p, table, nil); got != want {
		t.Fatalf("after events:\n got  %s\n want %s", got, want)
	}
	p.Apply(nil, []subnet.Event{removed(moved)})
	if table.Lookup(netip.MustParseAddr("fd10:244:0:1::1")) != nil || len(p.View()) != 1 {
		t.Fatalf("removal by IPv6 subnet: %v", p.View())
	}
}

var underlayDual = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8:1::/64")}

// DirectRouting in both families: a peer on the L2 in both gets two
// direct routes (each with its family's source); one whose lease has no
// on-link PublicIPv6 is routed for IPv4 and reached through UDP for IPv6;
// when it gains one, its IPv6 slot goes and a route comes; a foreign IPv6
// route sends that subnet back to UDP; the source check binds both
// families' subnets to the MACs of the PublicIP and PublicIPv6.
func TestPeerPathsDualStackDirectRouting(t *testing.T) {
	table, routes, check := newDualTable(t, true), newFakeRoutes(), &fakeCheck{}
	p := New(Config{Policy: routing.Policy{DirectRouting: true}, OnLink: underlayDual, Table: table, Routes: routes, Check: check,
		Source: netip.MustParseAddr("10.244.9.0"), Source6: netip.MustParseAddr("fd10:244:0:9::"), Log: quiet()})
	a := lease6("10.244.1.0/24", "fd10:244:0:1::/64", "192.0.2.2", "2001:db8:1::2")
	b := lease6("10.244.2.0/24", "fd10:244:0:2::/64", "192.0.2.3", "")
	c := lease6("10.244.3.0/24", "fd10:244:0:3::/64", "198.51.100.4", "2001:db8:9::4")
	p.Apply([]subnet.Lease{a, b, c}, nil)
	want := "10.244.1.0/24 direct/direct 192.0.2.2 route[10.244.1.0/24]=192.0.2.2 src=10.244.9.0 route[fd10:244:0:1::/64]=2001:db8:1::2 src=fd10:244:0:9::; " +
		"10.244.2.0/24 direct/udp 192.0.2.3 route[10.244.2.0/24]=192.0.2.3 src=10.244.9.0 table[fd10:244:0:2::/64]=192.0.2.3:8285; " +
		"10.244.3.0/24 udp/udp 198.51.100.4:8285 table[10.244.3.0/24]=198.51.100.4:8285 table[fd10:244:0:3::/64]=198.51.100.4:8285"
	if got := describe6(t, p, table, routes); got != want {
		t.Fatalf("snapshot:\n got  %s\n want %s", got, want)
	}
	b2 := lease6("10.244.2.0/24", "fd10:244:0:2::/64", "192.0.2.3", "2001:db8:1::3")
	p.Apply(nil, []subnet.Event{added(b2)})
	wantB := "10.244.2.0/24 direct/direct 192.0.2.3 route[10.244.2.0/24]=192.0.2.3 src=10.244.9.0 route[fd10:244:0:2::/64]=2001:db8:1::3 src=fd10:244:0:9::"
	if got := describe6(t, p, table, routes); !strings.Contains(got, wantB) || table.Lookup(netip.MustParseAddr("fd10:244:0:2::1")) != nil {
		t.Fatalf("b gains a PublicIPv6 on the L2:\n got  %s\n want %s", got, wantB)
	}
	// c moves onto the L2 for IPv4 only: its IPv4 slot goes, its IPv6 one stays.
	c2 := lease6("10.244.3.0/24", "fd10:244:0:3::/64", "192.0.2.4", "2001:db8:9::4")
	p.Apply(nil, []subnet.Event{added(c2)})
	wantC := "10.244.3.0/24 direct/udp 192.0.2.4 route[10.244.3.0/24]=192.0.2.4 src=10.244.9.0 table[fd10:244:0:3::/64]=192.0.2.4:8285"
	if got := describe6(t, p, table, routes); !strings.Contains(got, wantC) || table.Lookup(netip.MustParseAddr("10.244.3.1")) != nil {
		t.Fatalf("c onto the L2 for IPv4:\n got  %s\n want %s", got, wantC)
	}
	// A foreign route on a's IPv6 subnet: a's IPv6 falls back to UDP.
	routes.foreign[netip.MustParsePrefix("fd10:244:0:1::/64")] = true
	routes.neigh[netip.MustParseAddr("192.0.2.2")] = net.HardwareAddr{2, 0, 0, 0, 0, 2}
	routes.neigh[netip.MustParseAddr("2001:db8:1::3")] = net.HardwareAddr{2, 0, 0, 0, 0, 3}
	p.Repair()
	wantA := "10.244.1.0/24 direct/udp 192.0.2.2 route[10.244.1.0/24]=192.0.2.2 src=10.244.9.0 table[fd10:244:0:1::/64]=192.0.2.2:8285"
	if got := describe6(t, p, table, routes); !strings.Contains(got, wantA) {
		t.Fatalf("a's IPv6 subnet blocked:\n got  %s\n want %s", got, wantA)
	}
	if got := check.String(); got != "10.244.1.0/24 from 02:00:00:00:00:02; fd10:244:0:2::/64 from 02:00:00:00:00:03" {
		t.Fatalf("bindings %q", got)
	}
	p.Apply(nil, []subnet.Event{removed(a), removed(b2), removed(c2)})
	if got := describe6(t, p, table, routes); got != "" || len(table.Peers()) != 0 {
		t.Fatalf("after removals: %q, table %v", got, table.Peers())
	}
}

// host-gw in both families: IPv6 subnets routed via on-link PublicIPv6,
// unreachable without one.
func TestPeerPathsDualStackHostGW(t *testing.T) {
	table, routes := newDualTable(t, true), newFakeRoutes()
	p := New(Config{Policy: routing.Policy{HostGW: true}, OnLink: underlayDual, Table: table, Routes: routes, Check: &fakeCheck{},
		Source6: netip.MustParseAddr("fd10:244:0:9::"), Log: quiet()})
	p.Apply([]subnet.Lease{
		lease6("10.244.1.0/24", "fd10:244:0:1::/64", "192.0.2.2", "2001:db8:1::2"),
		lease6("10.244.2.0/24", "fd10:244:0:2::/64", "192.0.2.3", ""),
	}, nil)
	want := "10.244.1.0/24 direct/direct 192.0.2.2 route[10.244.1.0/24]=192.0.2.2 route[fd10:244:0:1::/64]=2001:db8:1::2 src=fd10:244:0:9::; " +
		"10.244.2.0/24 direct/unreachable 192.0.2.3 route[10.244.2.0/24]=192.0.2.3"
	if got := describe6(t, p, table, routes); got != want {
		t.Fatalf("\n got  %s\n want %s", got, want)
	}
	if len(table.Peers()) != 0 {
		t.Fatalf("host-gw put peers in the UDP table: %v", table.Peers())
	}
}
