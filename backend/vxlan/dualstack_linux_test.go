//go:build !unit

package vxlan

import (
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/backend"
	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/testbed"
)

// Dual stack (issue 21) as flanneld v0.28.10 runs it: beside flannel.1 a
// second VXLAN device flannel-v6.1 (same VNI and port, its own MAC, source
// the node's IPv6 underlay address), the lease's PublicIPv6 and
// BackendV6Data {"VNI":1,"VtepMAC":...}, and per peer the IPv6 neighbour
// <v6 subnet>:: -> VtepMAC, the FDB entry VtepMAC -> PublicIPv6 and the
// route <v6 subnet> via <v6 subnet>:: dev flannel-v6.1 onlink. Two
// backends in two namespaces reach each other's VTEP addresses over both
// families.
func TestDualStackTwoBackends(t *testing.T) {
	a, b := testbed.NSForTest(t, "wv6"), testbed.NSForTest(t, "wv6")
	run(t, a, "ip", "link", "add", "under0", "type", "veth", "peer", "name", "under1")
	run(t, a, "ip", "link", "set", "under1", "netns", b.Name)
	hosts := []struct {
		n         *testbed.NS
		dev       string
		v4, v6    string
		sub, sub6 string
	}{
		{a, "under0", "192.0.2.1", "2001:db8::1", "10.244.1.0/24", "fd10:244:0:1::/64"},
		{b, "under1", "192.0.2.2", "2001:db8::2", "10.244.2.0/24", "fd10:244:0:2::/64"},
	}
	cfg, err := subnet.ParseConfig([]byte(`{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:244::/56","Backend":{"Type":"vxlan"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := Factory().Check(cfg); err != nil {
		t.Fatal(err)
	}
	bes := make([]*Backend, 2)
	leases := make([]subnet.Lease, 2)
	for i, h := range hosts {
		run(t, h.n, "ip", "addr", "add", h.v4+"/24", "dev", h.dev)
		run(t, h.n, "ip", "addr", "add", h.v6+"/64", "dev", h.dev, "nodad")
		run(t, h.n, "ip", "link", "set", h.dev, "up")
		err := ns.WithNetNSPath(h.n.Path(), func(ns.NetNS) error {
			link, err := netlink.LinkByName(h.dev)
			if err != nil {
				return err
			}
			be, err := Factory().New(backend.Node{Config: cfg, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
				Underlay: backend.Underlay{Name: h.dev, Index: link.Attrs().Index, MTU: 1500,
					PublicIP: netip.MustParseAddr(h.v4), PublicIPv6: netip.MustParseAddr(h.v6)}})
			if err != nil {
				return err
			}
			bes[i] = be.(*Backend)
			attrs, err := bes[i].LeaseAttrs()
			if err != nil {
				return err
			}
			leases[i] = subnet.Lease{Subnet: netip.MustParsePrefix(h.sub), IPv6Subnet: netip.MustParsePrefix(h.sub6), Attrs: attrs}
			return bes[i].Start(t.Context(), leases[i])
		})
		if err != nil {
			t.Fatalf("host %d: %v", i+1, err)
		}
		t.Cleanup(func() { bes[i].Close() })
		a := leases[i].Attrs
		if a.PublicIPv6 != h.v6 || !strings.Contains(string(a.BackendV6Data), `"VNI":1`) || string(a.BackendV6Data) == string(a.BackendData) {
			t.Fatalf("host %d: lease attributes %+v: want PublicIPv6 and BackendV6Data with the IPv6 device's own MAC", i+1, a)
		}
	}
	for i := range bes {
		bes[i].Apply([]subnet.Lease{leases[1-i]}, nil)
	}
	for i, h := range hosts {
		o := hosts[1-i]
		d, err := ParseLeaseData(leases[1-i].Attrs.BackendV6Data)
		if err != nil {
			t.Fatal(err)
		}
		mac6 := d.VtepMAC.String()
		gw6 := netip.MustParsePrefix(o.sub6).Addr().String()
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"ip", "-d", "link", "show", "flannel-v6.1"}, "vxlan id 1 local " + h.v6 + " dev " + h.dev},
			{[]string{"ip", "-d", "link", "show", "flannel-v6.1"}, "dstport 8472"},
			{[]string{"ip", "link", "show", "flannel-v6.1"}, "mtu 1430"},
			{[]string{"ip", "-6", "addr", "show", "dev", "flannel-v6.1"}, netip.MustParsePrefix(h.sub6).Addr().String() + "/128"},
			{[]string{"ip", "-6", "neigh", "show", "dev", "flannel-v6.1"}, gw6 + " lladdr " + mac6 + " PERMANENT"},
			{[]string{"bridge", "fdb", "show", "dev", "flannel-v6.1"}, mac6 + " dst " + o.v6 + " self permanent"},
			{[]string{"ip", "-6", "route", "show", "dev", "flannel-v6.1"}, o.sub6 + " via " + gw6 + " metric 1024 onlink"},
			{[]string{"ip", "route", "show", "dev", "flannel.1"}, o.sub + " via " + netip.MustParsePrefix(o.sub).Addr().String() + " onlink"},
		} {
			if out := run(t, h.n, c.args...); !strings.Contains(out, c.want) {
				t.Errorf("host %d: %v: want %q in:\n%s", i+1, c.args, c.want, out)
			}
		}
		run(t, h.n, "ping", "-6", "-c", "2", "-W", "2", gw6)
		run(t, h.n, "ping", "-c", "2", "-W", "2", netip.MustParsePrefix(o.sub).Addr().String())
		if p := bes[i].Peers(); len(p) != 1 || p[0].IPv6Subnet != netip.MustParsePrefix(o.sub6) {
			t.Errorf("host %d: peers %+v, want the other with its IPv6 subnet", i+1, p)
		}
	}
	// A peer's IPv6 side with a malformed BackendV6Data: its IPv6 entries
	// go, its IPv4 side stays, the lease is counted once.
	bad := leases[1]
	bad.Attrs.BackendV6Data = []byte(`{"VNI":1,"VtepMAC":"not-a-mac"}`)
	bes[0].Apply(nil, []subnet.Event{{Type: subnet.EventAdded, Lease: bad}})
	if out := run(t, a, "ip", "-6", "route", "show", "dev", "flannel-v6.1"); strings.Contains(out, hosts[1].sub6) {
		t.Errorf("the malformed IPv6 side still has a route:\n%s", out)
	}
	if out := run(t, a, "ip", "route", "show", "dev", "flannel.1"); !strings.Contains(out, hosts[1].sub) {
		t.Errorf("the peer's IPv4 side went with its IPv6 side:\n%s", out)
	}
	// Counted once across the periodic checks too (each family's skips
	// used to forget the other's, so a skip was counted at every check).
	for range 3 {
		bes[0].mu.Lock()
		bes[0].sync(true)
		bes[0].mu.Unlock()
	}
	if got := bes[0].Counters()["skipped_leases_"+SkipData]; got != uint64(1) {
		t.Errorf("skipped_leases_data %v, want 1", got)
	}
	// The same for a skip of the IPv4 side (its BackendData malformed).
	bad.Attrs.BackendData = []byte(`{"VNI":1,"VtepMAC":"also-not-a-mac"}`)
	bes[0].Apply(nil, []subnet.Event{{Type: subnet.EventAdded, Lease: bad}})
	for range 3 {
		bes[0].mu.Lock()
		bes[0].sync(true)
		bes[0].mu.Unlock()
	}
	if got := bes[0].Counters()["skipped_leases_"+SkipData]; got != uint64(2) {
		t.Errorf("skipped_leases_data %v, want 2 (the IPv6 side once, the IPv4 side once)", got)
	}
}
