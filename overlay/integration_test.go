//go:build !unit

package overlay

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
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

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"
)

// node is one overlay host in its own network namespace.
type node struct {
	ns      string
	under   netip.Addr
	subnet  netip.Prefix
	overlay *Overlay
}

func (n *node) tunAddr() netip.Addr { return n.subnet.Addr() }

func (n *node) endpoint() netip.AddrPort { return netip.AddrPortFrom(n.under, 8285) }

// do runs f inside the node's namespace (sockets made there stay there).
func (n *node) do(t *testing.T, f func() error) {
	t.Helper()
	h, err := ns.GetNS("/var/run/netns/" + n.ns)
	if err != nil {
		t.Fatalf("open netns %s: %v", n.ns, err)
	}
	defer h.Close()
	if err := h.Do(func(ns.NetNS) error { return f() }); err != nil {
		t.Fatalf("in netns %s: %v", n.ns, err)
	}
}

func (n *node) exec(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.ns, name}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func requireIntegration(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("integration test needs root (network namespaces, TUN devices)")
	}
	for _, tool := range []string{"ip", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("integration test needs %q in PATH (apt-get install iproute2 iputils-ping): %v", tool, err)
		}
	}
}

// newPair builds two namespaces joined by a veth pair (192.0.2.1/24,
// 192.0.2.2/24) and runs one Overlay in each with static peer tables.
func newPair(t *testing.T) (a, b *node) { return newPairQueues(t, 1) }

// newPairQueues is newPair with queues TUN queues and sockets per node.
func newPairQueues(t *testing.T, queues int) (a, b *node) {
	requireIntegration(t)
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	sfx := hex.EncodeToString(rnd[:])
	a = &node{ns: "wtA" + sfx, under: netip.MustParseAddr("192.0.2.1"), subnet: netip.MustParsePrefix("10.244.1.0/24")}
	b = &node{ns: "wtB" + sfx, under: netip.MustParseAddr("192.0.2.2"), subnet: netip.MustParsePrefix("10.244.2.0/24")}
	for _, n := range []*node{a, b} {
		mustRun(t, "ip", "netns", "add", n.ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n.ns).Run() })
	}
	va, vb := "wva"+sfx, "wvb"+sfx
	mustRun(t, "ip", "link", "add", va, "netns", a.ns, "type", "veth", "peer", "name", vb, "netns", b.ns)
	for _, x := range []struct {
		n    *node
		link string
	}{{a, va}, {b, vb}} {
		mustRun(t, "ip", "-n", x.n.ns, "addr", "add", x.n.under.String()+"/24", "dev", x.link)
		mustRun(t, "ip", "-n", x.n.ns, "link", "set", x.link, "up")
		mustRun(t, "ip", "-n", x.n.ns, "link", "set", "lo", "up")
	}
	start(t, a, b, queues)
	start(t, b, a, queues)
	return a, b
}

func start(t *testing.T, self, peer *node, queues int) {
	table, err := NewPeerTable(testNetwork, 24)
	if err != nil {
		t.Fatal(err)
	}
	if err := table.Set(Peer{Subnet: peer.subnet, Endpoint: peer.endpoint()}); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("node", self.ns)
	}
	self.do(t, func() error {
		o, err := New(Config{Network: testNetwork, Subnet: self.subnet, MTU: OverlayMTU(1500), Port: 8285, Queues: queues, Logger: log}, table)
		self.overlay = o
		return err
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := self.overlay.Run(ctx); err != nil {
			t.Errorf("%s: Run: %v", self.ns, err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if err := self.overlay.Close(); err != nil {
			t.Errorf("%s: Close: %v", self.ns, err)
		}
	})
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestOverlayBetweenNamespaces(t *testing.T) {
	for _, queues := range []int{1, 2} {
		t.Run(fmt.Sprintf("queues=%d", queues), func(t *testing.T) { overlayBetweenNamespaces(t, queues) })
	}
}

func overlayBetweenNamespaces(t *testing.T, queues int) {
	a, b := newPairQueues(t, queues)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()

	t.Run("device", func(t *testing.T) {
		out, err := a.exec(ctx, "ip", "-d", "addr", "show", "dev", "weft0")
		if err != nil || !strings.Contains(out, "10.244.1.0/32") || !strings.Contains(out, fmt.Sprintf("mtu %d", OverlayMTU(1500))) {
			t.Fatalf("weft0: %v\n%s", err, out)
		}
		out, err = a.exec(ctx, "ip", "route", "show", "10.244.0.0/16")
		if err != nil || !strings.Contains(out, "dev weft0") {
			t.Fatalf("route: %v\n%s", err, out)
		}
	})

	t.Run("ping both ways", func(t *testing.T) {
		for _, x := range [][2]*node{{a, b}, {b, a}} {
			out, err := x[0].exec(ctx, "ping", "-c", "3", "-i", "0.2", "-W", "2", x[1].tunAddr().String())
			if err != nil || !strings.Contains(out, " 0% packet loss") {
				t.Fatalf("ping %s -> %s: %v\n%s", x[0].ns, x[1].tunAddr(), err, out)
			}
		}
	})

	t.Run("tcp transfer", func(t *testing.T) {
		tcpTransfer(t, a, b, "tcp4", net.JoinHostPort(b.tunAddr().String(), "5001"), 20*time.Second)
	})

	t.Run("unleased subnet gets net unreachable", func(t *testing.T) {
		before := a.overlay.Stats().TX.Drops[DropNoPeer]
		out, _ := a.exec(ctx, "ping", "-c", "1", "-W", "1", "10.244.99.1")
		if !strings.Contains(out, "Destination Net Unreachable") {
			t.Fatalf("ping output lacks Destination Net Unreachable:\n%s", out)
		}
		if a.overlay.Stats().TX.Drops[DropNoPeer] <= before {
			t.Fatal("no_peer drop not counted")
		}
	})

	t.Run("outside network is dropped", func(t *testing.T) {
		before := a.overlay.Stats().TX.Drops[DropOutsideNetwork]
		// A route for a non-overlay address through weft0 (in the test namespace only).
		if _, err := a.exec(ctx, "ip", "route", "add", "198.51.100.0/24", "dev", "weft0"); err != nil {
			t.Fatal(err)
		}
		_, _ = a.exec(ctx, "ping", "-c", "1", "-W", "1", "198.51.100.1")
		if a.overlay.Stats().TX.Drops[DropOutsideNetwork] <= before {
			t.Fatal("outside_network drop not counted")
		}
	})

	t.Run("datagram from non-peer address", func(t *testing.T) {
		before := a.overlay.Stats().RX
		b.do(t, func() error {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: b.under.AsSlice()}) // a random port: not B's endpoint
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.WriteToUDPAddrPort(datagram(84, "10.244.2.5", "10.244.1.0", 64), a.endpoint())
			return err
		})
		waitFor(t, "unknown_peer drop", func() bool {
			return a.overlay.Stats().RX.Drops[DropUnknownPeer] > before.Drops[DropUnknownPeer]
		})
		if after := a.overlay.Stats().RX; after.Packets != before.Packets {
			t.Fatalf("RX packets went from %d to %d: a dropped datagram reached the TUN", before.Packets, after.Packets)
		}
	})

	t.Run("spoofed inner source", func(t *testing.T) {
		before := a.overlay.Stats().RX
		// B's kernel sends a packet with a source outside B's subnet; B's
		// overlay carries it to A from B's real endpoint, A must drop it.
		b.do(t, func() error {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
			if err != nil {
				return fmt.Errorf("raw socket: %w", err)
			}
			defer unix.Close(fd)
			pkt := putIPv4(make([]byte, 60), 60, "10.244.3.7", "10.244.1.0", 64)
			return unix.Sendto(fd, pkt, 0, &unix.SockaddrInet4{Addr: a.tunAddr().As4()})
		})
		waitFor(t, "spoofed_inner_source drop", func() bool {
			return a.overlay.Stats().RX.Drops[DropSpoofedInnerSource] > before.Drops[DropSpoofedInnerSource]
		})
		if after := a.overlay.Stats().RX; after.Packets != before.Packets {
			t.Fatalf("RX packets went from %d to %d: a spoofed packet reached the TUN", before.Packets, after.Packets)
		}
	})
}

// TestOverlayDropsBroadcastAndOptions: B's kernel sends, through B's
// overlay and from B's real endpoint, a packet for A's subnet broadcast
// address and one with IP options; A counts and drops both.
func TestOverlayDropsBroadcastAndOptions(t *testing.T) {
	a, b := newPair(t)
	send := func(pkt []byte, dst netip.Addr) {
		b.do(t, func() error {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
			if err != nil {
				return fmt.Errorf("raw socket: %w", err)
			}
			defer unix.Close(fd)
			return unix.Sendto(fd, pkt, 0, &unix.SockaddrInet4{Addr: dst.As4()})
		})
	}
	for _, tc := range []struct {
		name   string
		pkt    []byte
		dst    netip.Addr
		reason DropReason
	}{
		{"broadcast", putIPv4(make([]byte, 60), 60, "10.244.2.0", "10.244.1.255", 64), netip.MustParseAddr("10.244.1.255"), DropBroadcastDestination},
		{"options", withOptions(append(make([]byte, HeaderLen), putIPv4(make([]byte, 64), 64, "10.244.2.0", "10.244.1.0", 64)...))[HeaderLen:], a.tunAddr(), DropIPOptions},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := a.overlay.Stats().RX
			sentBefore := b.overlay.Stats().TX.Packets
			send(tc.pkt, tc.dst)
			waitFor(t, "B to forward the packet", func() bool { return b.overlay.Stats().TX.Packets > sentBefore })
			waitFor(t, tc.reason.String()+" drop", func() bool {
				return a.overlay.Stats().RX.Drops[tc.reason] > before.Drops[tc.reason]
			})
			if after := a.overlay.Stats().RX; after.Packets != before.Packets {
				t.Fatalf("RX packets went from %d to %d: the packet reached the TUN", before.Packets, after.Packets)
			}
		})
	}
}

// tcpTransfer sends 16 MiB of random bytes from a to a listener of b's on
// addr (network "tcp4" or "tcp6", through the overlay) and checks that b
// received them intact and that a's overlay counted at least as many bytes
// sent. deadline bounds the connection (it only stops a hung test).
func tcpTransfer(t *testing.T, a, b *node, network, addr string, deadline time.Duration) {
	t.Helper()
	payload := make([]byte, 16<<20)
	_, _ = rand.Read(payload)
	var ln net.Listener
	b.do(t, func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	defer ln.Close()
	got := make(chan [32]byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- [32]byte{}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(deadline))
		h := sha256.New()
		_, _ = io.Copy(h, c)
		got <- [32]byte(h.Sum(nil))
	}()
	var c net.Conn
	a.do(t, func() (err error) {
		c, err = net.DialTimeout(network, addr, 5*time.Second)
		return err
	})
	_ = c.SetDeadline(time.Now().Add(deadline))
	if _, err := io.Copy(c, bytes.NewReader(payload)); err != nil {
		t.Fatalf("send: %v", err)
	}
	_ = c.Close()
	if h := <-got; h != sha256.Sum256(payload) {
		t.Fatal("received data differs from what was sent")
	}
	s := a.overlay.Stats()
	if s.TX.Bytes < uint64(len(payload)) {
		t.Fatalf("TX bytes %d < payload", s.TX.Bytes)
	}
	t.Logf("A TX: %d packets, %d batches; B RX drops %v", s.TX.Packets, s.TX.Batches, b.overlay.Stats().RX.Drops)
}
