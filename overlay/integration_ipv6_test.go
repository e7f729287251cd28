//go:build !unit

package overlay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// node6 is a node of a network with IPv6: its IPv6 subnet beside node's.
type node6 struct {
	node
	subnet6 netip.Prefix
}

func (n *node6) tunAddr6() netip.Addr { return n.subnet6.Addr() }

// newPairIPv6 builds two namespaces joined by a veth pair and runs one
// Overlay in each: a dual-stack network (10.244.0.0/16, fd10:244::/56)
// over an IPv4 underlay, or (underlay6) an IPv6-only network over an IPv6
// underlay (2001:db8::1/64, 2001:db8::2/64).
func newPairIPv6(t *testing.T, underlay6 bool) (a, b *node6) {
	requireIntegration(t)
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	sfx := hex.EncodeToString(rnd[:])
	a = &node6{node: node{ns: "w6A" + sfx, under: netip.MustParseAddr("192.0.2.1"), subnet: netip.MustParsePrefix("10.244.1.0/24")},
		subnet6: netip.MustParsePrefix("fd10:244:0:1::/64")}
	b = &node6{node: node{ns: "w6B" + sfx, under: netip.MustParseAddr("192.0.2.2"), subnet: netip.MustParsePrefix("10.244.2.0/24")},
		subnet6: netip.MustParsePrefix("fd10:244:0:2::/64")}
	if underlay6 {
		a.under, b.under = netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
		a.subnet, b.subnet = netip.Prefix{}, netip.Prefix{}
	}
	for _, n := range []*node6{a, b} {
		mustRun(t, "ip", "netns", "add", n.ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n.ns).Run() })
	}
	va, vb := "w6a"+sfx, "w6b"+sfx
	mustRun(t, "ip", "link", "add", va, "netns", a.ns, "type", "veth", "peer", "name", vb, "netns", b.ns)
	for _, x := range []struct {
		n    *node6
		link string
	}{{a, va}, {b, vb}} {
		if underlay6 {
			mustRun(t, "ip", "-n", x.n.ns, "addr", "add", x.n.under.String()+"/64", "dev", x.link, "nodad")
		} else {
			mustRun(t, "ip", "-n", x.n.ns, "addr", "add", x.n.under.String()+"/24", "dev", x.link)
		}
		mustRun(t, "ip", "-n", x.n.ns, "link", "set", x.link, "up")
		mustRun(t, "ip", "-n", x.n.ns, "link", "set", "lo", "up")
	}
	start6(t, a, b, underlay6)
	start6(t, b, a, underlay6)
	return a, b
}

func start6(t *testing.T, self, peer *node6, underlay6 bool) {
	tc := TableConfig{IPv6Network: testNetwork6, IPv6SubnetLen: 64}
	cfg := Config{IPv6Network: testNetwork6, IPv6Subnet: self.subnet6, Port: 8285, UnderlayIPv6: underlay6,
		MTU: OverlayMTUFor(1500, underlay6)}
	if self.subnet.IsValid() {
		tc.Network, tc.SubnetLen = testNetwork, 24
		cfg.Network, cfg.Subnet = testNetwork, self.subnet
	}
	table, err := NewPeerTableFor(tc)
	if err != nil {
		t.Fatal(err)
	}
	if err := table.Set(Peer{Subnet: peer.subnet, IPv6Subnet: peer.subnet6, Endpoint: peer.endpoint()}); err != nil {
		t.Fatal(err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("node", self.ns)
	}
	self.do(t, func() error {
		o, err := New(cfg, table)
		self.overlay = o
		return err
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := self.overlay.Run(ctx); err != nil {
			t.Errorf("%s: Run: %v", self.ns, err)
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if err := self.overlay.Close(); err != nil {
			t.Errorf("%s: Close: %v", self.ns, err)
		}
	})
}

// TestOverlayIPv6BetweenNamespaces: real TUNs and sockets carry IPv6 inner
// traffic (ping -6, a 16 MiB TCP/IPv6 transfer through the TSO split and
// the GRO coalescing) over an IPv4 underlay and over an IPv6 underlay;
// an unleased IPv6 subnet gets ICMPv6 unreachable; an IPv6 packet from a
// source outside the sending peer's IPv6 subnet is dropped.
func TestOverlayIPv6BetweenNamespaces(t *testing.T) {
	for _, underlay6 := range []bool{false, true} {
		t.Run(fmt.Sprintf("ipv6 underlay=%v", underlay6), func(t *testing.T) { overlayIPv6BetweenNamespaces(t, underlay6) })
	}
}

func overlayIPv6BetweenNamespaces(t *testing.T, underlay6 bool) {
	a, b := newPairIPv6(t, underlay6)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("device", func(t *testing.T) {
		out, err := a.exec(ctx, "ip", "-6", "addr", "show", "dev", "weft0")
		if err != nil || !strings.Contains(out, "fd10:244:0:1::/128") || !strings.Contains(out, fmt.Sprintf("mtu %d", OverlayMTUFor(1500, underlay6))) {
			t.Fatalf("weft0: %v\n%s", err, out)
		}
		out, err = a.exec(ctx, "ip", "-6", "route", "show", "fd10:244::/56")
		if err != nil || !strings.Contains(out, "dev weft0") {
			t.Fatalf("route: %v\n%s", err, out)
		}
	})

	t.Run("ping -6 both ways", func(t *testing.T) {
		for _, x := range [][2]*node6{{a, b}, {b, a}} {
			out, err := x[0].exec(ctx, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", x[1].tunAddr6().String())
			if err != nil || !strings.Contains(out, " 0% packet loss") {
				t.Fatalf("ping -6 %s -> %s: %v\n%s", x[0].ns, x[1].tunAddr6(), err, out)
			}
		}
	})

	if !underlay6 {
		t.Run("ipv4 still", func(t *testing.T) {
			out, err := a.exec(ctx, "ping", "-c", "2", "-i", "0.2", "-W", "2", b.tunAddr().String())
			if err != nil || !strings.Contains(out, " 0% packet loss") {
				t.Fatalf("ping: %v\n%s", err, out)
			}
		})
	}

	t.Run("tcp6 transfer", func(t *testing.T) {
		tcpTransfer(t, &a.node, &b.node, "tcp6", net.JoinHostPort(b.tunAddr6().String(), "5001"), 40*time.Second)
	})

	t.Run("unleased subnet gets ICMPv6 unreachable", func(t *testing.T) {
		before := a.overlay.Stats().TX.Drops[DropNoPeer]
		out, _ := a.exec(ctx, "ping", "-6", "-c", "1", "-W", "1", "fd10:244:0:99::1")
		if !strings.Contains(out, "Destination unreachable: No route") {
			t.Fatalf("ping -6 output lacks Destination unreachable: No route:\n%s", out)
		}
		if a.overlay.Stats().TX.Drops[DropNoPeer] <= before {
			t.Fatal("no_peer drop not counted")
		}
	})

	t.Run("spoofed inner IPv6 source", func(t *testing.T) {
		before := a.overlay.Stats().RX
		b.do(t, func() error {
			fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW, unix.IPPROTO_RAW)
			if err != nil {
				return fmt.Errorf("raw socket: %w", err)
			}
			defer unix.Close(fd)
			pkt := putIPv6(make([]byte, 60), 60, "fd10:244:0:3::7", a.tunAddr6().String(), 64, protoUDP)
			return unix.Sendto(fd, pkt, 0, &unix.SockaddrInet6{Addr: a.tunAddr6().As16()})
		})
		waitFor(t, "spoofed_inner_source drop", func() bool {
			return a.overlay.Stats().RX.Drops[DropSpoofedInnerSource] > before.Drops[DropSpoofedInnerSource]
		})
		if after := a.overlay.Stats().RX; after.Packets != before.Packets {
			t.Fatalf("RX packets went from %d to %d: a spoofed packet reached the TUN", before.Packets, after.Packets)
		}
	})
}
