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

// The reconciler's tests without root: the real peer table (pure), fakes
// of the route syncer and the source check. kernel_linux_test.go runs the
// same steps against the real kernel in a namespace.

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
func describe(t *testing.T, p *Paths, table *overlay.PeerTable, owned func() ([]routing.Route, error)) string {
	t.Helper()
	var routes []routing.Route
	if owned != nil {
		var err error
		if routes, err = owned(); err != nil {
			t.Fatal(err)
		}
	}
	var out []string
	for _, pp := range p.View() {
		s := fmt.Sprintf("%s %s %s", pp.Subnet, pp.Mode, pp.Endpoint())
		if peer := table.Lookup(pp.Subnet.Addr().Next()); peer != nil {
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

func newTable(t *testing.T) *overlay.PeerTable {
	t.Helper()
	table, err := overlay.NewPeerTable(netip.MustParsePrefix("10.244.0.0/16"), 24)
	if err != nil {
		t.Fatal(err)
	}
	return table
}

// step is one Apply and what the paths, the peer table and the routes are
// after it.
type step struct {
	name     string
	snapshot []subnet.Lease
	events   []subnet.Event
	want     string
}

// directRoutingSteps run on a node whose underlay has 192.0.2.1/24, where
// someone else's route holds 10.244.3.0/24.
func directRoutingSteps() []step {
	a, b, c := udpLease("10.244.1.0/24", "192.0.2.2"), udpLease("10.244.2.0/24", "198.51.100.3"), udpLease("10.244.3.0/24", "192.0.2.3")
	return []step{
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
}

// hostGWSnapshot and hostGWWant: host-gw on the same node, whose TUN
// address 10.244.9.0 is the routes' preferred source.
func hostGWSnapshot() []subnet.Lease {
	return []subnet.Lease{hostGWLease("10.244.1.0/24", "192.0.2.2"), hostGWLease("10.244.2.0/24", "198.51.100.3"), udpLease("10.244.3.0/24", "192.0.2.3")}
}

const hostGWWant = "10.244.1.0/24 direct 192.0.2.2 route=192.0.2.2 src=10.244.9.0; 10.244.2.0/24 unreachable ; 10.244.3.0/24 direct 192.0.2.3 route=192.0.2.3 src=10.244.9.0"

// fakeRoutes is the main table as routing.Kernel.Sync sees it: weft's
// routes (owned) and the destinations of everyone else's (foreign); neigh
// is the neighbour table.
type fakeRoutes struct {
	owned   map[netip.Prefix]routing.Route
	foreign map[netip.Prefix]bool
	neigh   map[netip.Addr]net.HardwareAddr
}

func newFakeRoutes(foreign ...string) *fakeRoutes {
	f := &fakeRoutes{owned: map[netip.Prefix]routing.Route{}, foreign: map[netip.Prefix]bool{}, neigh: map[netip.Addr]net.HardwareAddr{}}
	for _, p := range foreign {
		f.foreign[netip.MustParsePrefix(p)] = true
	}
	return f
}

func (f *fakeRoutes) Sync(want []routing.Route) (routing.Changes, error) {
	var c routing.Changes
	wanted := map[netip.Prefix]routing.Route{}
	for _, r := range want {
		wanted[r.Subnet] = r
	}
	for p, r := range f.owned {
		if w, ok := wanted[p]; !ok || w != r || f.foreign[p] {
			delete(f.owned, p)
			c.Deleted = append(c.Deleted, p)
		}
	}
	for _, r := range want {
		switch {
		case f.foreign[r.Subnet]:
			c.Blocked = append(c.Blocked, r)
		case f.owned[r.Subnet] != r:
			f.owned[r.Subnet] = r
			c.Added = append(c.Added, r)
		}
	}
	return c, nil
}

func (f *fakeRoutes) Owned() ([]routing.Route, error) {
	out := slices.Collect(func(yield func(routing.Route) bool) {
		for _, r := range f.owned {
			if !yield(r) {
				return
			}
		}
	})
	slices.SortFunc(out, func(a, b routing.Route) int { return a.Subnet.Compare(b.Subnet) })
	return out, nil
}

func (f *fakeRoutes) Neighbours(addrs []netip.Addr) (map[netip.Addr]net.HardwareAddr, error) {
	out := map[netip.Addr]net.HardwareAddr{}
	for _, a := range addrs {
		if mac, ok := f.neigh[a]; ok {
			out[a] = mac
		}
	}
	return out, nil
}

// fakeCheck is the source check: the bindings last set.
type fakeCheck struct {
	bindings []routing.Binding
	dropped  uint64
}

func (f *fakeCheck) Set(b []routing.Binding) error {
	f.bindings = slices.Clone(b)
	slices.SortFunc(f.bindings, func(a, b routing.Binding) int { return a.Subnet.Compare(b.Subnet) })
	return nil
}
func (f *fakeCheck) Dropped() (uint64, error) { return f.dropped, nil }

func (f *fakeCheck) String() string {
	var s []string
	for _, b := range f.bindings {
		s = append(s, b.String())
	}
	return strings.Join(s, "; ")
}

var underlay24 = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}

func newFakePaths(t *testing.T, policy routing.Policy, source netip.Addr, foreign ...string) (*Paths, *overlay.PeerTable, *fakeRoutes, *fakeCheck) {
	t.Helper()
	table, routes, check := newTable(t), newFakeRoutes(foreign...), &fakeCheck{}
	p := New(Config{Policy: policy, OnLink: underlay24, Source: source, Table: table, Routes: routes, Check: check,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return p, table, routes, check
}

func TestPeerPathsDirectRoutingFakes(t *testing.T) {
	p, table, routes, _ := newFakePaths(t, routing.Policy{DirectRouting: true}, netip.Addr{}, "10.244.3.0/24")
	for _, s := range directRoutingSteps() {
		p.Apply(s.snapshot, s.events)
		if got := describe(t, p, table, routes.Owned); got != s.want {
			t.Errorf("%s:\n got  %s\n want %s", s.name, got, s.want)
		}
	}
	p.Clear()
	if len(routes.owned) != 0 {
		t.Errorf("after Clear: weft routes %v", routes.owned)
	}
	if !routes.foreign[netip.MustParsePrefix("10.244.3.0/24")] {
		t.Error("the foreign route was touched")
	}
}

func TestPeerPathsHostGWFakes(t *testing.T) {
	p, table, routes, _ := newFakePaths(t, routing.Policy{HostGW: true}, netip.MustParseAddr("10.244.9.0"))
	p.Apply(hostGWSnapshot(), nil)
	if got := describe(t, p, table, routes.Owned); got != hostGWWant {
		t.Errorf("\n got  %s\n want %s", got, hostGWWant)
	}
	// A foreign route taking a host-gw peer's subnet makes it unreachable
	// (no UDP to fall back to).
	routes.foreign[netip.MustParsePrefix("10.244.1.0/24")] = true
	p.Repair()
	want := "10.244.1.0/24 unreachable ; 10.244.2.0/24 unreachable ; 10.244.3.0/24 direct 192.0.2.3 route=192.0.2.3 src=10.244.9.0"
	if got := describe(t, p, table, routes.Owned); got != want {
		t.Errorf("after a foreign route:\n got  %s\n want %s", got, want)
	}
}

// Repair puts back a route deleted by hand and keeps the source check in
// step with the neighbour table: a binding appears once the peer's MAC is
// known, follows a new MAC, and goes with the peer.
func TestPeerPathsRepairAndSourceCheck(t *testing.T) {
	p, table, routes, check := newFakePaths(t, routing.Policy{DirectRouting: true}, netip.Addr{})
	a, b := udpLease("10.244.1.0/24", "192.0.2.2"), udpLease("10.244.2.0/24", "192.0.2.3")
	p.Apply([]subnet.Lease{a, b}, nil)
	if check.String() != "" {
		t.Fatalf("bindings before any MAC is known: %s", check)
	}
	routes.neigh[netip.MustParseAddr("192.0.2.2")] = net.HardwareAddr{2, 0, 0, 0, 0, 2}
	delete(routes.owned, a.Subnet) // ip route del by hand
	p.Repair()
	want := "10.244.1.0/24 direct 192.0.2.2 route=192.0.2.2; 10.244.2.0/24 direct 192.0.2.3 route=192.0.2.3"
	if got := describe(t, p, table, routes.Owned); got != want {
		t.Errorf("after repair:\n got  %s\n want %s", got, want)
	}
	if got := check.String(); got != "10.244.1.0/24 from 02:00:00:00:00:02" {
		t.Errorf("bindings %q", got)
	}
	routes.neigh[netip.MustParseAddr("192.0.2.2")] = net.HardwareAddr{2, 0, 0, 0, 0, 9}
	routes.neigh[netip.MustParseAddr("192.0.2.3")] = net.HardwareAddr{2, 0, 0, 0, 0, 3}
	p.Repair()
	if got := check.String(); got != "10.244.1.0/24 from 02:00:00:00:00:09; 10.244.2.0/24 from 02:00:00:00:00:03" {
		t.Errorf("bindings after a MAC change %q", got)
	}
	p.Apply(nil, []subnet.Event{removed(a)})
	if got := check.String(); got != "10.244.2.0/24 from 02:00:00:00:00:03" {
		t.Errorf("bindings after a peer left %q", got)
	}
	check.dropped = 7
	if n := p.SourceDrops(); n != 7 {
		t.Errorf("SourceDrops %d", n)
	}
}

func TestPeerPathsPlainUDP(t *testing.T) {
	table := newTable(t)
	p := New(Config{Table: table, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	var owned func() ([]routing.Route, error) // plain UDP: no routes at all
	p.Apply([]subnet.Lease{udpLease("10.244.1.0/24", "192.0.2.2"), hostGWLease("10.244.2.0/24", "192.0.2.3")}, nil)
	p.Apply(nil, []subnet.Event{added(udpLease("10.244.4.0/24", "198.51.100.4"))})
	want := "10.244.1.0/24 udp 192.0.2.2:8285 table=192.0.2.2:8285; 10.244.4.0/24 udp 198.51.100.4:8285 table=198.51.100.4:8285"
	if got := describe(t, p, table, owned); got != want {
		t.Errorf("\n got  %s\n want %s", got, want)
	}
	p.Clear()
}
