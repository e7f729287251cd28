//go:build !unit

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/weftnet/weft/overlay"
	"github.com/weftnet/weft/routing"
	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/testbed"
)

// kernelInNS is a routing.Kernel in a fresh namespace whose eth0 (one end
// of a veth pair) has 192.0.2.1/24.
func kernelInNS(t *testing.T) (*routing.Kernel, *testbed.NS) {
	t.Helper()
	ns := testbed.NSForTest(t, "wpp")
	for _, args := range [][]string{
		{"link", "add", "eth0", "type", "veth", "peer", "name", "eth0p"},
		{"addr", "add", "192.0.2.1/24", "dev", "eth0"},
		{"link", "set", "eth0", "up"},
		{"link", "set", "eth0p", "up"},
	} {
		if out, err := ns.Run(context.Background(), "ip", args...); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	nsh, err := netns.GetFromPath(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nsh.Close() })
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	k, err := routing.NewKernel(h, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	return k, ns
}

func udpLease(subnetStr, ip string) subnet.Lease {
	return subnet.Lease{Subnet: netip.MustParsePrefix(subnetStr), Attrs: subnet.NewLeaseAttrs(netip.MustParseAddr(ip), 8285)}
}

func hostGWLease(subnetStr, ip string) subnet.Lease {
	return subnet.Lease{Subnet: netip.MustParsePrefix(subnetStr),
		Attrs: subnet.LeaseAttrsFor(subnet.Backend{Type: subnet.BackendHostGW}, netip.MustParseAddr(ip))}
}

func added(l subnet.Lease) subnet.Event   { return subnet.Event{Type: subnet.EventAdded, Lease: l} }
func removed(l subnet.Lease) subnet.Event { return subnet.Event{Type: subnet.EventRemoved, Lease: l} }

// describe renders the view and where each subnet really goes: the UDP
// table's endpoint and weft's kernel route.
func describe(t *testing.T, p *peerPaths) string {
	t.Helper()
	var routes []routing.Route
	if p.kernel != nil {
		var err error
		if routes, err = p.kernel.Owned(); err != nil {
			t.Fatal(err)
		}
	}
	var out []string
	for _, pp := range p.view() {
		s := fmt.Sprintf("%s %s %s", pp.Subnet, pp.Mode, pp.endpoint())
		if peer := p.udp.Lookup(pp.Subnet.Addr().Next()); peer != nil {
			s += " table=" + peer.Endpoint.String()
		}
		if i := slices.IndexFunc(routes, func(r routing.Route) bool { return r.Subnet == pp.Subnet }); i >= 0 {
			s += " route=" + routes[i].Gateway.String()
			if routes[i].Source.IsValid() {
				s += " src=" + routes[i].Source.String()
			}
			routes = slices.Delete(routes, i, i+1)
		}
		out = append(out, s)
	}
	for _, r := range routes {
		out = append(out, "stray route "+r.String())
	}
	return strings.Join(out, "; ")
}

func newTestPaths(t *testing.T, policy routing.Policy, k *routing.Kernel) *peerPaths {
	t.Helper()
	table, err := overlay.NewPeerTable(netip.MustParsePrefix("10.244.0.0/16"), 24)
	if err != nil {
		t.Fatal(err)
	}
	var onLink []netip.Prefix
	if k != nil {
		if onLink, err = k.OnLinkPrefixes(); err != nil {
			t.Fatal(err)
		}
	}
	return makePeerPaths(policy, onLink, k, table, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func TestPeerPathsDirectRouting(t *testing.T) {
	k, ns := kernelInNS(t)
	// Someone's route holds 10.244.3.0/24 already.
	if out, err := ns.Run(context.Background(), "ip", "route", "add", "10.244.3.0/24", "via", "192.0.2.50", "dev", "eth0"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	p := newTestPaths(t, routing.Policy{DirectRouting: true}, k)
	a, b, c := udpLease("10.244.1.0/24", "192.0.2.2"), udpLease("10.244.2.0/24", "198.51.100.3"), udpLease("10.244.3.0/24", "192.0.2.3")
	steps := []struct {
		name     string
		snapshot []subnet.Lease
		events   []subnet.Event
		want     string
	}{
		{name: "snapshot", snapshot: []subnet.Lease{a, b, c},
			want: "10.244.1.0/24 direct 192.0.2.2 route=192.0.2.2; " +
				"10.244.2.0/24 udp 198.51.100.3:8285 table=198.51.100.3:8285; " +
				"10.244.3.0/24 udp 192.0.2.3:8285 table=192.0.2.3:8285"}, // blocked by the foreign route: UDP
		{name: "a moves off the L2", events: []subnet.Event{added(udpLease("10.244.1.0/24", "198.51.100.9"))},
			want: "10.244.1.0/24 udp 198.51.100.9:8285 table=198.51.100.9:8285; " +
				"10.244.2.0/24 udp 198.51.100.3:8285 table=198.51.100.3:8285; " +
				"10.244.3.0/24 udp 192.0.2.3:8285 table=192.0.2.3:8285"},
		{name: "b moves onto the L2", events: []subnet.Event{added(udpLease("10.244.2.0/24", "192.0.2.4"))},
			want: "10.244.1.0/24 udp 198.51.100.9:8285 table=198.51.100.9:8285; " +
				"10.244.2.0/24 direct 192.0.2.4 route=192.0.2.4; " +
				"10.244.3.0/24 udp 192.0.2.3:8285 table=192.0.2.3:8285"},
		{name: "b leaves, a lease of another backend and one with a bad PublicIP arrive",
			events: []subnet.Event{removed(b), added(hostGWLease("10.244.5.0/24", "192.0.2.5")), added(udpLease("10.244.6.0/24", "192.0.2.6")),
				added(subnet.Lease{Subnet: netip.MustParsePrefix("10.244.6.0/24"), Attrs: subnet.LeaseAttrs{PublicIP: "nope"}})},
			want: "10.244.1.0/24 udp 198.51.100.9:8285 table=198.51.100.9:8285; " +
				"10.244.3.0/24 udp 192.0.2.3:8285 table=192.0.2.3:8285"},
		{name: "a comes back onto the L2, re-list drops c", snapshot: []subnet.Lease{a},
			want: "10.244.1.0/24 direct 192.0.2.2 route=192.0.2.2"},
	}
	for _, s := range steps {
		p.apply(s.snapshot, s.events)
		if got := describe(t, p); got != s.want {
			t.Errorf("%s:\n got  %s\n want %s", s.name, got, s.want)
		}
	}
	p.close()
	if routes, err := k.Owned(); err != nil || len(routes) != 0 {
		t.Errorf("after close: weft routes %v, %v", routes, err)
	}
	out, _ := ns.Run(context.Background(), "ip", "route", "show", "10.244.3.0/24")
	if !strings.Contains(out, "via 192.0.2.50") {
		t.Errorf("the foreign route was touched: %q", out)
	}
}

func TestPeerPathsHostGW(t *testing.T) {
	k, ns := kernelInNS(t)
	p := newTestPaths(t, routing.Policy{HostGW: true}, k)
	// The routes' preferred source is this node's TUN address (here on lo).
	if out, err := ns.Run(context.Background(), "ip", "addr", "add", "10.244.9.0/32", "dev", "lo"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	p.source = netip.MustParseAddr("10.244.9.0")
	p.apply([]subnet.Lease{hostGWLease("10.244.1.0/24", "192.0.2.2"), hostGWLease("10.244.2.0/24", "198.51.100.3"), udpLease("10.244.3.0/24", "192.0.2.3")}, nil)
	want := "10.244.1.0/24 direct 192.0.2.2 route=192.0.2.2 src=10.244.9.0; 10.244.2.0/24 unreachable ; 10.244.3.0/24 direct 192.0.2.3 route=192.0.2.3 src=10.244.9.0"
	if got := describe(t, p); got != want {
		t.Errorf("\n got  %s\n want %s", got, want)
	}
	p.close()
}

func TestPeerPathsPlainUDP(t *testing.T) {
	p := newTestPaths(t, routing.Policy{}, nil)
	p.apply([]subnet.Lease{udpLease("10.244.1.0/24", "192.0.2.2"), hostGWLease("10.244.2.0/24", "192.0.2.3")}, nil)
	p.apply(nil, []subnet.Event{added(udpLease("10.244.4.0/24", "198.51.100.4"))})
	want := "10.244.1.0/24 udp 192.0.2.2:8285 table=192.0.2.2:8285; 10.244.4.0/24 udp 198.51.100.4:8285 table=198.51.100.4:8285"
	if got := describe(t, p); got != want {
		t.Errorf("\n got  %s\n want %s", got, want)
	}
	p.close()
}
