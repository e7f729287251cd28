package vxlan

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// fakeKernel is the device's state in memory, keyed as the kernel keys it.
type fakeKernel struct {
	neighs  map[netip.Addr]MAC
	fdbs    map[MAC]netip.Addr
	routes  map[netip.Prefix]netip.Addr
	foreign []netip.Prefix
	ops     []string
	failSet bool
}

func newFake() *fakeKernel {
	return &fakeKernel{neighs: map[netip.Addr]MAC{}, fdbs: map[MAC]netip.Addr{}, routes: map[netip.Prefix]netip.Addr{}}
}

func (f *fakeKernel) List() (State, []netip.Prefix, error) {
	var s State
	for ip, m := range f.neighs {
		s.Neighs = append(s.Neighs, Neigh{ip, m})
	}
	for m, d := range f.fdbs {
		s.FDBs = append(s.FDBs, FDB{m, d})
	}
	for d, gw := range f.routes {
		s.Routes = append(s.Routes, Route{d, gw})
	}
	return s, f.foreign, nil
}

var errInjected = errors.New("injected")

func (f *fakeKernel) SetNeigh(n Neigh) error {
	f.ops = append(f.ops, "neigh+")
	if f.failSet {
		return errInjected
	}
	f.neighs[n.IP] = n.MAC
	return nil
}
func (f *fakeKernel) DelNeigh(n Neigh) error {
	f.ops = append(f.ops, "neigh-")
	delete(f.neighs, n.IP)
	return nil
}
func (f *fakeKernel) SetFDB(x FDB) error {
	f.ops = append(f.ops, "fdb+")
	f.fdbs[x.MAC] = x.Dst
	return nil
}
func (f *fakeKernel) DelFDB(x FDB) error {
	f.ops = append(f.ops, "fdb-")
	delete(f.fdbs, x.MAC)
	return nil
}
func (f *fakeKernel) SetRoute(r Route) error {
	f.ops = append(f.ops, "route+")
	f.routes[r.Dst] = r.Gw
	return nil
}
func (f *fakeKernel) DelRoute(r Route) error {
	f.ops = append(f.ops, "route-")
	delete(f.routes, r.Dst)
	return nil
}

func mac(last byte) MAC { return MAC{0x0a, 0, 0, 0, 0, last} }

func peer(subnet, pub string, m MAC) Peer {
	return Peer{Subnet: netip.MustParsePrefix(subnet), PublicIP: netip.MustParseAddr(pub), VtepMAC: m}
}

// Flanneld's entries for a peer: <subnet>.0 -> VtepMAC, VtepMAC -> PublicIP,
// <subnet> via <subnet>.0 onlink; direct peers get none; a second peer
// claiming a VtepMAC already in use is skipped.
func TestWant(t *testing.T) {
	a := peer("10.244.1.0/24", "192.0.2.1", mac(1))
	b := peer("10.244.2.0/24", "192.0.2.2", mac(2))
	d := peer("10.244.3.0/24", "192.0.2.3", mac(3))
	d.Direct = true
	dup := peer("10.244.4.0/24", "192.0.2.4", mac(1))
	s, skipped := Want([]Peer{dup, b, d, a}, nil)
	want := State{
		Neighs: []Neigh{{netip.MustParseAddr("10.244.1.0"), mac(1)}, {netip.MustParseAddr("10.244.2.0"), mac(2)}},
		FDBs:   []FDB{{mac(1), netip.MustParseAddr("192.0.2.1")}, {mac(2), netip.MustParseAddr("192.0.2.2")}},
		Routes: []Route{{netip.MustParsePrefix("10.244.1.0/24"), netip.MustParseAddr("10.244.1.0")}, {netip.MustParsePrefix("10.244.2.0/24"), netip.MustParseAddr("10.244.2.0")}},
	}
	if !slices.Equal(s.Neighs, want.Neighs) || !slices.Equal(s.FDBs, want.FDBs) || !slices.Equal(s.Routes, want.Routes) {
		t.Fatalf("Want = %+v, want %+v", s, want)
	}
	if len(skipped) != 1 || skipped[0].Peer != dup {
		t.Fatalf("skipped = %+v, want the duplicate VtepMAC", skipped)
	}

	// A lease written later with a working peer's VtepMAC (a stray etcd
	// writer) does not take the MAC, even with a lower subnet: the peer
	// that held it keeps it.
	stray := peer("10.244.0.0/24", "192.0.2.99", mac(2))
	s2, skipped := Want([]Peer{a, b, stray}, s.HeldMACs())
	if !slices.Equal(s2.FDBs, want.FDBs) || !slices.Equal(s2.Routes, want.Routes) {
		t.Fatalf("with a stray lease copying %s's MAC: %+v, want %+v", b.Subnet, s2, want)
	}
	if len(skipped) != 1 || skipped[0].Peer != stray || !strings.Contains(skipped[0].Reason, "10.244.2.0/24") {
		t.Fatalf("skipped = %+v, want the stray lease", skipped)
	}
	// The kernel lists entries in its own order (a kept device at start).
	listed := State{Neighs: slices.Clone(s.Neighs), Routes: slices.Clone(s.Routes)}
	slices.Reverse(listed.Neighs)
	if held := listed.HeldMACs(); len(held) != 2 || held[mac(1)] != a.Subnet || held[mac(2)] != b.Subnet {
		t.Fatalf("HeldMACs of a listed state: %v", held)
	}
	// Without a holder (a first start) the lower subnet wins; once the
	// holder's lease is gone the other takes the MAC.
	if _, skipped := Want([]Peer{b, stray}, nil); len(skipped) != 1 || skipped[0].Peer != b {
		t.Fatalf("no holder: skipped %+v, want the higher subnet", skipped)
	}
	if s3, skipped := Want([]Peer{stray}, s2.HeldMACs()); len(skipped) != 0 || len(s3.FDBs) != 1 || s3.FDBs[0].Dst != stray.PublicIP {
		t.Fatalf("holder gone: %+v, skipped %+v", s3, skipped)
	}
}

// Sync adds in flanneld's order (neighbour, FDB, route), removes the
// stale (routes first), follows a peer whose MAC or address changed, puts
// back what was deleted by hand, and leaves a destination someone else
// routes alone.
func TestSync(t *testing.T) {
	k := newFake()
	a := peer("10.244.1.0/24", "192.0.2.1", mac(1))
	b := peer("10.244.2.0/24", "192.0.2.2", mac(2))
	// Stale entries of an earlier run.
	stale := peer("10.244.9.0/24", "192.0.2.9", mac(9))
	st, _ := Want([]Peer{stale}, nil)
	for _, n := range st.Neighs {
		k.SetNeigh(n)
	}
	for _, f := range st.FDBs {
		k.SetFDB(f)
	}
	for _, r := range st.Routes {
		k.SetRoute(r)
	}
	k.ops = nil

	want, _ := Want([]Peer{a, b}, nil)
	c, err := Sync(k, want)
	if err != nil || len(c.Errors) > 0 {
		t.Fatal(err, c.Errors)
	}
	if got := k.ops; !slices.Equal(got, []string{"route-", "fdb-", "neigh-", "neigh+", "neigh+", "fdb+", "fdb+", "route+", "route+"}) {
		t.Fatalf("operations %v", got)
	}
	check := func(s State) {
		t.Helper()
		have, _, _ := k.List()
		if p := Diff(have, s); !p.Empty() {
			t.Fatalf("kernel differs from wanted: %+v", p)
		}
	}
	check(want)

	// Nothing to do: no operation.
	k.ops = nil
	if c, _ := Sync(k, want); !c.Empty() || len(k.ops) != 0 {
		t.Fatalf("second sync did %v", k.ops)
	}

	// b moved to another host with a new device: FDB and neighbour replaced.
	b2 := peer("10.244.2.0/24", "192.0.2.22", mac(22))
	want, _ = Want([]Peer{a, b2}, nil)
	if _, err := Sync(k, want); err != nil {
		t.Fatal(err)
	}
	check(want)
	if _, old := k.fdbs[mac(2)]; old {
		t.Fatal("the old VtepMAC's FDB entry is still there")
	}

	// Deleted by hand: put back.
	delete(k.routes, a.Subnet)
	delete(k.fdbs, a.VtepMAC)
	if c, _ := Sync(k, want); len(c.Set.Routes) != 1 || len(c.Set.FDBs) != 1 {
		t.Fatalf("repair: %+v", c.Plan)
	}
	check(want)

	// Someone else routes b's subnet on another device: not taken over.
	k.foreign = []netip.Prefix{b2.Subnet}
	delete(k.routes, b2.Subnet)
	c, _ = Sync(k, want)
	if len(c.Blocked) != 1 || c.Blocked[0].Dst != b2.Subnet {
		t.Fatalf("blocked = %v", c.Blocked)
	}
	if _, ok := k.routes[b2.Subnet]; ok {
		t.Fatal("installed a route over someone else's")
	}

	// Failures are reported, the rest is done.
	k.failSet = true
	k.neighs = map[netip.Addr]MAC{}
	c, _ = Sync(k, want)
	if len(c.Errors) != 2 {
		t.Fatalf("errors %v", c.Errors)
	}
}
