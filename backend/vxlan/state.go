package vxlan

import (
	"fmt"
	"net/netip"
	"slices"
)

// Peer is another node as this backend reaches it.
type Peer struct {
	Subnet   netip.Prefix
	PublicIP netip.Addr
	VtepMAC  MAC
	// Direct: reached by a plain route through the underlay
	// (DirectRouting, same L2), not through the VXLAN device.
	Direct bool
	// Lease is the primary subnet of the lease the peer comes from (its
	// IPv4 subnet; the IPv6 one in an IPv6-only network).
	Lease netip.Prefix
}

// Neigh is a permanent ARP entry on the VXLAN device: the peer's VTEP
// address (its subnet's first address, <subnet>.0) -> its VtepMAC.
type Neigh struct {
	IP  netip.Addr
	MAC MAC
}

// FDB is a forwarding-database entry of the VXLAN device: frames for MAC
// go to the VTEP at Dst (the peer's PublicIP).
type FDB struct {
	MAC MAC
	Dst netip.Addr
}

// Route is "<Dst> via <Gw> dev flannel.<VNI> onlink": Gw is the peer's
// VTEP address, which the neighbour entry resolves.
type Route struct {
	Dst netip.Prefix
	Gw  netip.Addr
}

func (r Route) String() string { return fmt.Sprintf("%s via %s onlink", r.Dst, r.Gw) }

// State is the device's neighbours, FDB entries and routes.
type State struct {
	Neighs []Neigh
	FDBs   []FDB
	Routes []Route
}

// Skipped is a peer left out of the wanted state, with the reason.
type Skipped struct {
	Peer   Peer
	Reason string
}

// Want is the state that makes every peer not reached directly reachable
// through the device, as flanneld installs it. Two peers with the same
// VtepMAC cannot both be reached (one FDB entry per MAC): the one that
// holds it already (held: MAC -> the subnet it was installed for, the
// previous Want's HeldMACs) keeps it, so that a lease written later (a
// stray etcd writer copying a working node's MAC) cannot take that node's
// traffic; between newcomers the lower subnet wins. The others are
// skipped.
func Want(peers []Peer, held map[MAC]netip.Prefix) (State, []Skipped) {
	ps := slices.Clone(peers)
	slices.SortFunc(ps, func(a, b Peer) int { return a.Subnet.Compare(b.Subnet) })
	byMAC := map[MAC]Peer{}
	for _, p := range ps {
		if p.Direct {
			continue
		}
		first, dup := byMAC[p.VtepMAC]
		if !dup || (held[p.VtepMAC] == p.Subnet && held[p.VtepMAC] != first.Subnet) {
			byMAC[p.VtepMAC] = p
		}
	}
	var s State
	var skipped []Skipped
	for _, p := range ps {
		if p.Direct {
			continue
		}
		if won := byMAC[p.VtepMAC]; won.Subnet != p.Subnet {
			skipped = append(skipped, Skipped{p, fmt.Sprintf("VtepMAC %s is also %s's (subnet %s)", p.VtepMAC, won.PublicIP, won.Subnet)})
			continue
		}
		gw := p.Subnet.Masked().Addr()
		s.Neighs = append(s.Neighs, Neigh{IP: gw, MAC: p.VtepMAC})
		s.FDBs = append(s.FDBs, FDB{MAC: p.VtepMAC, Dst: p.PublicIP})
		s.Routes = append(s.Routes, Route{Dst: p.Subnet.Masked(), Gw: gw})
	}
	return s, skipped
}

// HeldMACs is which subnet each VtepMAC of s is installed for (the held
// argument of the next Want): a route's gateway resolved by a neighbour
// entry. s is a state made by Want, or the device's as the kernel lists
// it (at start: what an earlier weftd or flanneld left).
func (s State) HeldMACs() map[MAC]netip.Prefix {
	byGw := make(map[netip.Addr]MAC, len(s.Neighs))
	for _, n := range s.Neighs {
		byGw[n.IP] = n.MAC
	}
	held := make(map[MAC]netip.Prefix, len(s.Routes))
	for _, r := range s.Routes {
		if m, ok := byGw[r.Gw]; ok {
			held[m] = r.Dst
		}
	}
	return held
}

// Plan is what turns one state into another. Set entries are added or
// replaced (an entry of the same key with another value is overwritten);
// Del entries are removed.
type Plan struct {
	Set, Del State
}

// Empty tells whether the plan changes nothing.
func (p Plan) Empty() bool {
	return len(p.Set.Neighs)+len(p.Set.FDBs)+len(p.Set.Routes)+len(p.Del.Neighs)+len(p.Del.FDBs)+len(p.Del.Routes) == 0
}

// Diff plans the changes from have to want. Entries are keyed by what the
// kernel keys them by: a neighbour by IP, an FDB entry by MAC, a route by
// destination.
func Diff(have, want State) Plan {
	var p Plan
	p.Set.Neighs, p.Del.Neighs = diff(have.Neighs, want.Neighs, func(n Neigh) netip.Addr { return n.IP })
	p.Set.FDBs, p.Del.FDBs = diff(have.FDBs, want.FDBs, func(f FDB) MAC { return f.MAC })
	p.Set.Routes, p.Del.Routes = diff(have.Routes, want.Routes, func(r Route) netip.Prefix { return r.Dst })
	return p
}

func diff[T comparable, K comparable](have, want []T, key func(T) K) (set, del []T) {
	h := make(map[K]T, len(have))
	for _, x := range have {
		h[key(x)] = x
	}
	w := make(map[K]bool, len(want))
	for _, x := range want {
		w[key(x)] = true
		if old, ok := h[key(x)]; !ok || old != x {
			set = append(set, x)
		}
	}
	for _, x := range have {
		if !w[key(x)] {
			del = append(del, x)
		}
	}
	return set, del
}

// Kernel is the VXLAN device's state in the kernel (netlink on Linux; a
// fake in tests).
type Kernel interface {
	// List returns the device's entries that are the backend's: permanent
	// neighbours and FDB entries and the routes on the device, and the
	// destinations inside the network routed by anyone else (another
	// device), which are left alone.
	List() (State, []netip.Prefix, error)
	SetNeigh(Neigh) error
	DelNeigh(Neigh) error
	SetFDB(FDB) error
	DelFDB(FDB) error
	SetRoute(Route) error
	DelRoute(Route) error
}

// Changes is what a Sync did.
type Changes struct {
	Plan
	// Blocked are wanted routes whose destination someone else routes.
	Blocked []Route
	// Errors are the operations that failed (the next Sync tries again).
	Errors []error
}

// Sync makes the kernel's state the wanted one: removals first (routes,
// then FDB entries, then neighbours), then additions in flanneld's order
// (neighbour, FDB entry, and the route last, so that the kernel never
// resolves the gateway itself). A route whose destination another device
// holds is not installed (Blocked): that peer's subnet stays routed as
// someone else decided, weft does not take the route over.
func Sync(k Kernel, want State) (Changes, error) {
	have, foreign, err := k.List()
	if err != nil {
		return Changes{}, fmt.Errorf("vxlan: list the device's state: %w", err)
	}
	var c Changes
	want = State{Neighs: slices.Clone(want.Neighs), FDBs: slices.Clone(want.FDBs), Routes: slices.Clone(want.Routes)}
	want.Routes = slices.DeleteFunc(want.Routes, func(r Route) bool {
		for _, f := range foreign {
			if f == r.Dst {
				c.Blocked = append(c.Blocked, r)
				return true
			}
		}
		return false
	})
	c.Plan = Diff(have, want)
	do := func(what string, x any, f func() error) {
		if err := f(); err != nil {
			c.Errors = append(c.Errors, fmt.Errorf("%s %v: %w", what, x, err))
		}
	}
	for _, r := range c.Del.Routes {
		do("delete route", r, func() error { return k.DelRoute(r) })
	}
	for _, f := range c.Del.FDBs {
		do("delete FDB entry", f, func() error { return k.DelFDB(f) })
	}
	for _, n := range c.Del.Neighs {
		do("delete neighbour", n, func() error { return k.DelNeigh(n) })
	}
	for _, n := range c.Set.Neighs {
		do("set neighbour", n, func() error { return k.SetNeigh(n) })
	}
	for _, f := range c.Set.FDBs {
		do("set FDB entry", f, func() error { return k.SetFDB(f) })
	}
	for _, r := range c.Set.Routes {
		do("set route", r, func() error { return k.SetRoute(r) })
	}
	return c, nil
}
