//go:build !unit

package vxlan

import (
	"io"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/backend"
	"github.com/weftnet/weft/routing"
	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/testbed"
)

// host6 is one node of twoHosts: its namespace, underlay and lease.
type host6 struct {
	n         *testbed.NS
	dev       string
	v4, v6    string // underlay addresses ("" v4: IPv6-only underlay)
	sub, sub6 string // the lease's subnets ("" sub: IPv6-only network)
	be        *Backend
	lease     subnet.Lease
}

// twoHosts starts a vxlan backend of network config cfgJSON in each of
// two namespaces joined by a veth (2001:db8::1 and ::2; 192.0.2.1 and .2
// when dual), and hands each the other's lease.
func twoHosts(t *testing.T, cfgJSON string, dual bool) []*host6 {
	t.Helper()
	a, b := testbed.NSForTest(t, "wv6o"), testbed.NSForTest(t, "wv6o")
	run(t, a, "ip", "link", "add", "under0", "type", "veth", "peer", "name", "under1")
	run(t, a, "ip", "link", "set", "under1", "netns", b.Name)
	hosts := []*host6{
		{n: a, dev: "under0", v6: "2001:db8::1", sub6: "fd10:244:0:1::/64"},
		{n: b, dev: "under1", v6: "2001:db8::2", sub6: "fd10:244:0:2::/64"},
	}
	if dual {
		hosts[0].v4, hosts[0].sub = "192.0.2.1", "10.244.1.0/24"
		hosts[1].v4, hosts[1].sub = "192.0.2.2", "10.244.2.0/24"
	}
	cfg, err := subnet.ParseConfig([]byte(cfgJSON))
	if err != nil {
		t.Fatal(err)
	}
	if err := Factory().Check(cfg); err != nil {
		t.Fatal(err)
	}
	for i, h := range hosts {
		if h.v4 != "" {
			run(t, h.n, "ip", "addr", "add", h.v4+"/24", "dev", h.dev)
		}
		run(t, h.n, "ip", "addr", "add", h.v6+"/64", "dev", h.dev, "nodad")
		run(t, h.n, "ip", "link", "set", h.dev, "up")
		run(t, h.n, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
		err := ns.WithNetNSPath(h.n.Path(), func(ns.NetNS) error {
			link, err := netlink.LinkByName(h.dev)
			if err != nil {
				return err
			}
			u := backend.Underlay{Name: h.dev, Index: link.Attrs().Index, MTU: 1500, PublicIPv6: netip.MustParseAddr(h.v6)}
			if h.v4 != "" {
				u.PublicIP = netip.MustParseAddr(h.v4)
			}
			be, err := Factory().New(backend.Node{Config: cfg, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Underlay: u})
			if err != nil {
				return err
			}
			h.be = be.(*Backend)
			attrs, err := h.be.LeaseAttrs()
			if err != nil {
				return err
			}
			h.lease = subnet.Lease{IPv6Subnet: netip.MustParsePrefix(h.sub6), Attrs: attrs}
			if h.sub != "" {
				h.lease.Subnet = netip.MustParsePrefix(h.sub)
			}
			return h.be.Start(t.Context(), h.lease)
		})
		if err != nil {
			t.Fatalf("host %d: %v", i+1, err)
		}
		t.Cleanup(func() { h.be.Close() })
	}
	for i, h := range hosts {
		h.be.Apply([]subnet.Lease{hosts[1-i].lease}, nil)
	}
	return hosts
}

// An IPv6-only network (EnableIPv4 false) on an IPv6-only underlay, as
// flanneld v0.28.10 runs it: only flannel-v6.<VNI> (no flannel.<VNI>),
// the lease with PublicIPv6 and BackendV6Data and no PublicIP or
// BackendData, the containers' MTU the IPv6 device's (1500 - 70), per
// peer flanneld's IPv6 neighbour, FDB entry and route; each node reaches
// the other's VTEP address; Peers lists the peer by its IPv6 subnet.
func TestIPv6OnlyTwoBackends(t *testing.T) {
	hosts := twoHosts(t, `{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd10:244::/56","Backend":{"Type":"vxlan"}}`, false)
	for i, h := range hosts {
		o := hosts[1-i]
		a := h.lease.Attrs
		d, err := ParseLeaseData(a.BackendV6Data)
		if a.PublicIP != "" || a.BackendData != nil || a.PublicIPv6 != h.v6 || err != nil || d.VNI != 1 {
			t.Fatalf("host %d: lease attributes %+v (%v): want PublicIPv6 and BackendV6Data only", i+1, a, err)
		}
		if err := a.Validate(); err != nil {
			t.Fatalf("host %d: the subnet package refuses the attributes: %v", i+1, err)
		}
		if m := h.be.MTU(); m != 1430 {
			t.Errorf("host %d: containers' MTU %d, want 1430 (flannel-v6.1's)", i+1, m)
		}
		if out := run(t, h.n, "ip", "link", "show"); strings.Contains(out, "flannel.1") {
			t.Errorf("host %d: an IPv4 device in an IPv6-only network:\n%s", i+1, out)
		}
		od, _ := ParseLeaseData(o.lease.Attrs.BackendV6Data)
		gw6 := netip.MustParsePrefix(o.sub6).Addr().String()
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"ip", "-d", "link", "show", "flannel-v6.1"}, "vxlan id 1 local " + h.v6 + " dev " + h.dev},
			{[]string{"ip", "link", "show", "flannel-v6.1"}, "mtu 1430"},
			{[]string{"ip", "-6", "addr", "show", "dev", "flannel-v6.1"}, netip.MustParsePrefix(h.sub6).Addr().String() + "/128"},
			{[]string{"ip", "-6", "neigh", "show", "dev", "flannel-v6.1"}, gw6 + " lladdr " + od.VtepMAC.String() + " PERMANENT"},
			{[]string{"bridge", "fdb", "show", "dev", "flannel-v6.1"}, od.VtepMAC.String() + " dst " + o.v6 + " self permanent"},
			{[]string{"ip", "-6", "route", "show", "dev", "flannel-v6.1"}, o.sub6 + " via " + gw6 + " metric 1024 onlink"},
		} {
			if out := run(t, h.n, c.args...); !strings.Contains(out, c.want) {
				t.Errorf("host %d: %v: want %q in:\n%s", i+1, c.args, c.want, out)
			}
		}
		run(t, h.n, "ping", "-6", "-c", "2", "-W", "2", gw6)
		if p := h.be.Peers(); len(p) != 1 || p[0].Subnet.IsValid() || p[0].IPv6Subnet != netip.MustParsePrefix(o.sub6) ||
			p[0].PublicIP != netip.MustParseAddr(o.v6) || p[0].Mode != ModeVXLAN {
			t.Errorf("host %d: peers %+v, want the other by its IPv6 subnet", i+1, p)
		}
	}
	// The peer's lease removed (by its IPv6 subnet, the lease's only one):
	// its entries go.
	hosts[0].be.Apply(nil, []subnet.Event{{Type: subnet.EventRemoved, Lease: hosts[1].lease}})
	if out := run(t, hosts[0].n, "ip", "-6", "route", "show", "dev", "flannel-v6.1"); strings.Contains(out, hosts[1].sub6) {
		t.Errorf("removed peer's route stays:\n%s", out)
	}
	if p := hosts[0].be.Peers(); len(p) != 0 {
		t.Errorf("peers after removal: %+v", p)
	}
}

// DirectRouting for the IPv6 side, as flanneld's: a peer whose PublicIPv6
// is on the underlay's IPv6 prefix gets a plain route via that address
// (weft's protocol, 119), no entries on flannel-v6.<VNI>, and is reached; in a
// dual-stack network the IPv4 side goes direct the same way, in an
// IPv6-only one the IPv6 side alone. Without DirectRouting (above) the
// peers go through the device.
func TestDirectRoutingIPv6(t *testing.T) {
	for _, dual := range []bool{true, false} {
		name := map[bool]string{true: "dual-stack", false: "IPv6-only"}[dual]
		t.Run(name, func(t *testing.T) {
			cfg := `{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd10:244::/56","Backend":{"Type":"vxlan","DirectRouting":true}}`
			if dual {
				cfg = `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:244::/56","Backend":{"Type":"vxlan","DirectRouting":true}}`
			}
			hosts := twoHosts(t, cfg, dual)
			for i, h := range hosts {
				o := hosts[1-i]
				if out := run(t, h.n, "ip", "-6", "route", "show", o.sub6); !strings.Contains(out, o.sub6+" via "+o.v6+" dev "+h.dev+" proto "+strconv.Itoa(int(routing.Protocol))) {
					t.Errorf("host %d: route to %s: %q, want a direct route via %s", i+1, o.sub6, out, o.v6)
				}
				if out := run(t, h.n, "ip", "-6", "neigh", "show", "dev", "flannel-v6.1", "nud", "permanent"); strings.TrimSpace(out) != "" {
					t.Errorf("host %d: neighbours on flannel-v6.1 for a direct peer:\n%s", i+1, out)
				}
				run(t, h.n, "ping", "-6", "-c", "2", "-W", "2", netip.MustParsePrefix(o.sub6).Addr().String())
				p := h.be.Peers()
				if len(p) != 1 || p[0].Mode != ModeDirect || p[0].IPv6Subnet != netip.MustParsePrefix(o.sub6) {
					t.Errorf("host %d: peers %+v, want the other direct with its IPv6 subnet", i+1, p)
				}
				if dual {
					if out := run(t, h.n, "ip", "route", "show", o.sub); !strings.Contains(out, o.sub+" via "+o.v4+" dev "+h.dev+" proto "+strconv.Itoa(int(routing.Protocol))) {
						t.Errorf("host %d: route to %s: %q, want a direct route via %s", i+1, o.sub, out, o.v4)
					}
				}
			}
			// The peer's IPv6 route deleted by hand comes back with the
			// next check; the peer's lease removed takes it away.
			h := hosts[0]
			run(t, h.n, "ip", "-6", "route", "del", hosts[1].sub6)
			h.be.mu.Lock()
			h.be.sync(true)
			h.be.mu.Unlock()
			if out := run(t, h.n, "ip", "-6", "route", "show", hosts[1].sub6); !strings.Contains(out, "via "+hosts[1].v6) {
				t.Errorf("direct IPv6 route not put back: %q", out)
			}
			h.be.Apply(nil, []subnet.Event{{Type: subnet.EventRemoved, Lease: hosts[1].lease}})
			if out := run(t, h.n, "ip", "-6", "route", "show", hosts[1].sub6); strings.TrimSpace(out) != "" {
				t.Errorf("direct IPv6 route of a removed peer stays: %q", out)
			}
		})
	}
}

// A stray etcd writer in a dual-stack network names a live peer's IPv6
// subnet under a key of its own ("10.244.9.0-24&fd10:244:0:2::-64", its
// own VtepMACs and addresses): the peer keeps its IPv6 subnet (neighbour,
// FDB entry and route on flannel-v6.1 unchanged across syncs, and it is
// still reached), the stray's IPv6 side is skipped and counted once
// (skipped_leases_subnet), its IPv4 side is an ordinary peer. Before,
// both leases made a route for the subnet and the one installed changed
// with the map order at each sync.
func TestStrayLeaseNamingAPeersIPv6Subnet(t *testing.T) {
	hosts := twoHosts(t, `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:244::/56","Backend":{"Type":"vxlan"}}`, true)
	a, b := hosts[0], hosts[1]
	stray := subnet.Lease{Subnet: netip.MustParsePrefix("10.244.9.0/24"), IPv6Subnet: netip.MustParsePrefix(b.sub6), Attrs: subnet.LeaseAttrs{
		PublicIP: "192.0.2.9", PublicIPv6: "2001:db8::9", BackendType: Type,
		BackendData: LeaseData{VNI: 1, VtepMAC: MAC{2, 0, 0, 0, 9, 4}}.Marshal(), BackendV6Data: LeaseData{VNI: 1, VtepMAC: MAC{2, 0, 0, 0, 9, 6}}.Marshal()}}
	d, _ := ParseLeaseData(b.lease.Attrs.BackendV6Data)
	gw6 := netip.MustParsePrefix(b.sub6).Addr().String()
	for i := range 6 {
		if i == 0 {
			a.be.Apply(nil, []subnet.Event{{Type: subnet.EventAdded, Lease: stray}})
		} else {
			a.be.mu.Lock()
			a.be.sync(true)
			a.be.mu.Unlock()
		}
		if out := run(t, a.n, "ip", "-6", "neigh", "show", gw6, "dev", "flannel-v6.1"); !strings.Contains(out, d.VtepMAC.String()) {
			t.Fatalf("sync %d: the peer's IPv6 gateway resolves to %q, want its VtepMAC %s", i, out, d.VtepMAC)
		}
		if out := run(t, a.n, "bridge", "fdb", "show", "dev", "flannel-v6.1"); strings.Contains(out, "2001:db8::9") {
			t.Fatalf("sync %d: an FDB entry for the stray:\n%s", i, out)
		}
	}
	run(t, a.n, "ping", "-6", "-c", "2", "-W", "2", gw6)
	if got := a.be.Counters()["skipped_leases_"+SkipSubnet]; got != uint64(1) {
		t.Errorf("skipped_leases_subnet %v, want 1", got)
	}
	p := a.be.Peers()
	if len(p) != 2 || p[0].IPv6Subnet != netip.MustParsePrefix(b.sub6) || p[1].Subnet != stray.Subnet || p[1].IPv6Subnet.IsValid() {
		t.Errorf("peers %+v: want the peer with its IPv6 subnet, the stray without", p)
	}
	// The peer's lease goes: the stray's claim is then the only one.
	a.be.Apply(nil, []subnet.Event{{Type: subnet.EventRemoved, Lease: b.lease}})
	if out := run(t, a.n, "bridge", "fdb", "show", "dev", "flannel-v6.1"); !strings.Contains(out, "2001:db8::9") {
		t.Errorf("the remaining claim is not installed:\n%s", out)
	}
}
