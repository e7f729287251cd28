package udp

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/weftnet/weft/backend"
	"github.com/weftnet/weft/overlay"
	"github.com/weftnet/weft/overlay/overlaytest"
	"github.com/weftnet/weft/routing"
	"github.com/weftnet/weft/subnet"
)

// newFakeNode6 makes a node whose udp backend runs its data path on
// overlaytest's fakes: publicIP or publicIPv6 may be "" (none); sub4 ""
// on an IPv6-only network, sub6 "" on an IPv4 one.
func newFakeNode6(t *testing.T, underlay *overlaytest.Network, cfg *subnet.Config, publicIP, publicIPv6, sub4, sub6 string) *fakeNode {
	t.Helper()
	u := backend.Underlay{Name: "eth0", MTU: 1500}
	if publicIP != "" {
		u.PublicIP = netip.MustParseAddr(publicIP)
	}
	if publicIPv6 != "" {
		u.PublicIPv6 = netip.MustParseAddr(publicIPv6)
	}
	b, err := New(backend.Node{Config: cfg, Underlay: u, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, routing.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	n := &fakeNode{b: b, tun: overlaytest.NewTUN(), done: make(chan error, 1)}
	ep := u.PublicIP
	if !ep.IsValid() {
		ep = u.PublicIPv6
	}
	b.openData = func(c overlay.Config, peers *overlay.PeerTable) (*overlay.Overlay, error) {
		return overlay.NewWith(c, peers, []overlay.Queue{{TUN: n.tun,
			Sockets: underlay.Sockets(netip.AddrPortFrom(ep, c.Port), overlay.DefaultSourcePorts)}})
	}
	b.watch = func(ctx context.Context, _ string, _ int, _ func(error)) error { <-ctx.Done(); return nil }
	attrs, err := b.LeaseAttrs()
	if err != nil {
		t.Fatal(err)
	}
	n.lease = subnet.Lease{Attrs: attrs}
	if sub4 != "" {
		n.lease.Subnet = netip.MustParsePrefix(sub4)
	}
	if sub6 != "" {
		n.lease.IPv6Subnet = netip.MustParsePrefix(sub6)
	}
	return n
}

// Two nodes' udp backends with IPv6, over the fakes: a dual-stack network
// over an IPv4 underlay (IPv6 inner in IPv4 datagrams) and an IPv6-only
// network over an IPv6 underlay (leases with PublicIPv6 only): a lease
// event makes A forward IPv6 to B and B answer; Peers() reports the IPv6
// subnet; after B's lease goes A answers with ICMPv6.
func TestTwoNodesIPv6(t *testing.T) {
	for _, c := range []struct {
		name, config     string
		ipA, ip6A, ipB   string
		ip6B, sub4A      string
		sub4B, endpointB string
	}{
		{"dual stack over IPv4", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:244::/56","IPv6SubnetLen":64,"Backend":{"Type":"udp"}}`,
			"192.0.2.1", "2001:db8::1", "192.0.2.2", "2001:db8::2", "10.244.1.0/24", "10.244.2.0/24", "192.0.2.2:8285"},
		{"IPv6 only over IPv6", `{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd10:244::/56","IPv6SubnetLen":64,"Backend":{"Type":"udp"}}`,
			"", "2001:db8::1", "", "2001:db8::2", "", "", "[2001:db8::2]:8285"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := subnet.ParseConfig([]byte(c.config))
			if err != nil {
				t.Fatal(err)
			}
			underlay := overlaytest.NewNetwork()
			a := newFakeNode6(t, underlay, cfg, c.ipA, c.ip6A, c.sub4A, "fd10:244:0:1::/64")
			b := newFakeNode6(t, underlay, cfg, c.ipB, c.ip6B, c.sub4B, "fd10:244:0:2::/64")
			if a.lease.Attrs.PublicIPv6 != c.ip6A || a.lease.Attrs.PublicIP != c.ipA {
				t.Fatalf("lease attrs %+v", a.lease.Attrs)
			}
			ctx, cancel := context.WithCancel(context.Background())
			a.start(t, ctx)
			b.start(t, ctx)
			t.Cleanup(cancel)

			b.b.Apply([]subnet.Lease{a.lease}, nil)
			a.b.Apply([]subnet.Lease{}, nil)
			a.b.Apply(nil, []subnet.Event{{Type: subnet.EventAdded, Lease: b.lease}})
			if peers := a.b.Peers(); len(peers) != 1 || peers[0].Mode != "udp" || peers[0].Endpoint != c.endpointB ||
				peers[0].IPv6Subnet != b.lease.IPv6Subnet {
				t.Fatalf("A's peers: %+v", peers)
			}
			pkt := overlaytest.UDPPacket(netip.MustParseAddrPort("[fd10:244:0:1::2]:4000"), netip.MustParseAddrPort("[fd10:244:0:2::2]:5000"), []byte("hello B"))
			a.tun.Send(pkt)
			got := b.tun.WaitWritten(1, 5*time.Second)
			hopped := bytes.Clone(pkt)
			hopped[7]--
			if len(got) != 1 || !bytes.Equal(got[0], hopped) {
				t.Fatalf("B got %d packets, want A's", len(got))
			}
			reply := overlaytest.UDPPacket(netip.MustParseAddrPort("[fd10:244:0:2::2]:5000"), netip.MustParseAddrPort("[fd10:244:0:1::2]:4000"), []byte("hello A"))
			b.tun.Send(reply)
			if back := a.tun.WaitWritten(1, 5*time.Second); len(back) != 1 {
				t.Fatalf("A got %d packets back", len(back))
			}
			a.b.Apply(nil, []subnet.Event{{Type: subnet.EventRemoved, Lease: b.lease}})
			a.tun.Send(pkt)
			if icmp := a.tun.WaitInjected(1, 5*time.Second); len(icmp) != 1 || icmp[0][0]>>4 != 6 || icmp[0][40] != 1 {
				t.Fatalf("after B's lease went: ICMPv6 errors %x", icmp)
			}
			if len(a.b.Peers()) != 0 {
				t.Fatalf("A's peers after removal: %+v", a.b.Peers())
			}
		})
	}
}
