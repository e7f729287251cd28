package overlaytest_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/weftnet/weft/overlay"
	"github.com/weftnet/weft/overlay/overlaytest"
)

type node struct {
	o    *overlay.Overlay
	tun  *overlaytest.TUN
	ep   netip.AddrPort
	v4   netip.Prefix
	v6   netip.Prefix
	done chan error
}

var (
	network4 = netip.MustParsePrefix("10.244.0.0/16")
	network6 = netip.MustParsePrefix("fd10:244::/56")
)

// newNode runs one node's data path on the fakes; ipv4 false leaves the
// network IPv6 only.
func newNode(t *testing.T, ctx context.Context, underlay *overlaytest.Network, ep netip.AddrPort, v4, v6 netip.Prefix, peers []overlay.Peer) *node {
	t.Helper()
	tc := overlay.TableConfig{IPv6Network: network6, IPv6SubnetLen: 64}
	cfg := overlay.Config{IPv6Network: network6, IPv6Subnet: v6, MTU: 1400, UnderlayIPv6: ep.Addr().Is6(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if v4.IsValid() {
		tc.Network, tc.SubnetLen = network4, 24
		cfg.Network, cfg.Subnet = network4, v4
	}
	tab, err := overlay.NewPeerTableFor(tc)
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.ResetChecked(peers); err != nil {
		t.Fatal(err)
	}
	n := &node{tun: overlaytest.NewTUN(), ep: ep, v4: v4, v6: v6, done: make(chan error, 1)}
	n.o, err = overlay.NewWith(cfg, tab, []overlay.Queue{{TUN: n.tun, Sockets: underlay.Sockets(ep, overlay.DefaultSourcePorts)}})
	if err != nil {
		t.Fatal(err)
	}
	go func() { n.done <- n.o.Run(ctx) }()
	t.Cleanup(func() {
		if err := <-n.done; err != nil {
			t.Errorf("Run: %v", err)
		}
		_ = n.o.Close()
	})
	return n
}

// hopped is an IPv6 packet as a router forwards it: hop limit one less.
func hopped(p []byte) []byte {
	q := bytes.Clone(p)
	q[7]--
	return q
}

// Two nodes forward inner IPv6 both ways, over an IPv4 underlay (a
// dual-stack network) and over an IPv6-only underlay (an IPv6-only
// network), answer an unleased IPv6 destination with ICMPv6 and an
// oversized packet with Packet Too Big, and drop a peer's IPv6 packet
// from another subnet.
func TestTwoNodesIPv6(t *testing.T) {
	for _, c := range []struct {
		name   string
		a, b   netip.AddrPort
		v4a    netip.Prefix
		v4b    netip.Prefix
		family string
	}{
		{"ipv4 underlay, dual stack", netip.MustParseAddrPort("192.0.2.1:8285"), netip.MustParseAddrPort("192.0.2.2:8285"),
			netip.MustParsePrefix("10.244.1.0/24"), netip.MustParsePrefix("10.244.2.0/24"), "4"},
		{"ipv6 underlay, ipv6 only", netip.MustParseAddrPort("[2001:db8::1]:8285"), netip.MustParseAddrPort("[2001:db8::2]:8285"),
			netip.Prefix{}, netip.Prefix{}, "6"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			underlay := overlaytest.NewNetwork()
			v6a, v6b := netip.MustParsePrefix("fd10:244:0:1::/64"), netip.MustParsePrefix("fd10:244:0:2::/64")
			a := newNode(t, ctx, underlay, c.a, c.v4a, v6a, []overlay.Peer{{Subnet: c.v4b, IPv6Subnet: v6b, Endpoint: c.b}})
			b := newNode(t, ctx, underlay, c.b, c.v4b, v6b, []overlay.Peer{{Subnet: c.v4a, IPv6Subnet: v6a, Endpoint: c.a}})
			t.Cleanup(cancel)

			pkt := overlaytest.UDPPacket(netip.MustParseAddrPort("[fd10:244:0:1::2]:4000"), netip.MustParseAddrPort("[fd10:244:0:2::2]:5000"), []byte("hello B"))
			a.tun.Send(pkt)
			if got := b.tun.WaitWritten(1, 5*time.Second); len(got) != 1 || !bytes.Equal(got[0], hopped(pkt)) {
				t.Fatalf("B got %d packets, want A's", len(got))
			}
			reply := overlaytest.UDPPacket(netip.MustParseAddrPort("[fd10:244:0:2::2]:5000"), netip.MustParseAddrPort("[fd10:244:0:1::2]:4000"), []byte("hello A"))
			b.tun.Send(reply)
			if got := a.tun.WaitWritten(1, 5*time.Second); len(got) != 1 || !bytes.Equal(got[0], hopped(reply)) {
				t.Fatalf("A got %d packets back, want B's reply", len(got))
			}
			if c.v4a.IsValid() { // IPv4 inner still goes too
				p4 := overlaytest.UDPPacket(netip.MustParseAddrPort("10.244.1.2:4000"), netip.MustParseAddrPort("10.244.2.2:5000"), []byte("v4"))
				a.tun.Send(p4)
				if got := b.tun.WaitWritten(2, 5*time.Second); len(got) != 2 || got[1][0] != 0x45 {
					t.Fatalf("B got %d packets, want the IPv4 one too", len(got))
				}
			}
			// Unleased: ICMPv6 destination unreachable back into A's TUN.
			a.tun.Send(overlaytest.UDPPacket(netip.MustParseAddrPort("[fd10:244:0:1::2]:4000"), netip.MustParseAddrPort("[fd10:244:0:9::2]:5000"), []byte("x")))
			icmp := a.tun.WaitInjected(1, 5*time.Second)
			if len(icmp) != 1 || icmp[0][0]>>4 != 6 || icmp[0][6] != 58 || icmp[0][40] != 1 {
				t.Fatalf("ICMPv6 errors: %x", icmp)
			}
			// Too big: Packet Too Big with the MTU.
			a.tun.Send(overlaytest.UDPPacket(netip.MustParseAddrPort("[fd10:244:0:1::2]:4000"), netip.MustParseAddrPort("[fd10:244:0:2::2]:5000"), make([]byte, 1400)))
			icmp = a.tun.WaitInjected(2, 5*time.Second)
			if len(icmp) != 2 || icmp[1][40] != 2 || binary.BigEndian.Uint32(icmp[1][44:]) != 1400 {
				t.Fatalf("Packet Too Big: %x", icmp[1:])
			}
			// B sends from a source outside its IPv6 subnet: A drops it.
			spoof := overlaytest.UDPPacket(netip.MustParseAddrPort("[fd10:244:0:7::2]:5000"), netip.MustParseAddrPort("[fd10:244:0:1::2]:4000"), []byte("spoof"))
			b.tun.Send(spoof)
			deadline := time.Now().Add(5 * time.Second)
			for a.o.Stats().RX.Drops[overlay.DropSpoofedInnerSource] == 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if d := a.o.Stats().RX.Drops[overlay.DropSpoofedInnerSource]; d != 1 {
				t.Fatalf("spoofed_inner_source drops %d, want 1", d)
			}
			if n := len(a.tun.Written()); n != 1 {
				t.Fatalf("A wrote %d packets, want only B's reply", n)
			}
		})
	}
}
