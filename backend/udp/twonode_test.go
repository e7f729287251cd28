package udp

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/weftnet/weft/backend"
	"github.com/weftnet/weft/overlay/overlaytest"
	"github.com/weftnet/weft/subnet"
)

// fakeNode is a udp backend whose data path runs on in-memory devices.
type fakeNode struct {
	b     *Backend
	tun   *overlaytest.TUN
	lease subnet.Lease
	done  chan error
}

// newFakeNode makes a node of an IPv4 network (newFakeNode6 without IPv6).
func newFakeNode(t *testing.T, underlay *overlaytest.Network, cfg *subnet.Config, publicIP, sub string) *fakeNode {
	t.Helper()
	return newFakeNode6(t, underlay, cfg, publicIP, "", sub, "")
}

func (n *fakeNode) start(t *testing.T, ctx context.Context) {
	t.Helper()
	if err := n.b.Start(ctx, n.lease); err != nil {
		t.Fatal(err)
	}
	go func() { n.done <- n.b.Run(ctx) }()
	t.Cleanup(func() {
		if err := <-n.done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := n.b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
}

// Two nodes' udp backends in one process, over overlaytest's devices and
// underlay: a lease event makes node A forward to node B; before it, and
// after B's lease is removed, A answers ICMP unreachable and B gets nothing.
func TestTwoNodesForwardAfterLeaseEvent(t *testing.T) {
	cfg, err := subnet.ParseConfig([]byte(`{"Network":"10.244.0.0/16","Backend":{"Type":"udp"}}`))
	if err != nil {
		t.Fatal(err)
	}
	underlay := overlaytest.NewNetwork()
	a := newFakeNode(t, underlay, cfg, "192.0.2.1", "10.244.1.0/24")
	b := newFakeNode(t, underlay, cfg, "192.0.2.2", "10.244.2.0/24")
	ctx, cancel := context.WithCancel(context.Background())
	a.start(t, ctx)
	b.start(t, ctx)
	t.Cleanup(cancel) // runs before the nodes' cleanups: Run returns first

	// B knows A from the start; A's first snapshot is empty.
	b.b.Apply([]subnet.Lease{a.lease}, nil)
	a.b.Apply([]subnet.Lease{}, nil)
	pkt := overlaytest.UDPPacket(netip.MustParseAddrPort("10.244.1.2:4000"), netip.MustParseAddrPort("10.244.2.2:5000"), []byte("hello B"))

	a.tun.Send(pkt)
	if icmp := a.tun.WaitInjected(1, 5*time.Second); len(icmp) != 1 {
		t.Fatalf("before the lease event: %d ICMP errors from A, want 1", len(icmp))
	}
	if got := b.tun.Written(); len(got) != 0 {
		t.Fatalf("before the lease event B got %d packets", len(got))
	}

	a.b.Apply(nil, []subnet.Event{{Type: subnet.EventAdded, Lease: b.lease}})
	if peers := a.b.Peers(); len(peers) != 1 || peers[0].Mode != "udp" || peers[0].Endpoint != "192.0.2.2:8285" {
		t.Fatalf("A's peers after the event: %+v", peers)
	}
	a.tun.Send(pkt)
	got := b.tun.WaitWritten(1, 5*time.Second)
	if len(got) != 1 || !bytes.Equal(got[0], routed(pkt)) {
		t.Fatalf("after the lease event B got %d packets (%x), want the one A was sent", len(got), got)
	}
	// And back: B's reply reaches A.
	reply := overlaytest.UDPPacket(netip.MustParseAddrPort("10.244.2.2:5000"), netip.MustParseAddrPort("10.244.1.2:4000"), []byte("hello A"))
	b.tun.Send(reply)
	if back := a.tun.WaitWritten(1, 5*time.Second); len(back) != 1 || !bytes.Equal(back[0], routed(reply)) {
		t.Fatalf("A got %d packets back, want B's reply", len(back))
	}

	a.b.Apply(nil, []subnet.Event{{Type: subnet.EventRemoved, Lease: b.lease}})
	a.tun.Send(pkt)
	if icmp := a.tun.WaitInjected(2, 5*time.Second); len(icmp) != 2 {
		t.Fatalf("after B's lease went: %d ICMP errors from A, want 2", len(icmp))
	}
	if n := len(b.tun.Written()); n != 1 {
		t.Fatalf("after B's lease went B got %d packets, want still 1", n)
	}
}

// routed is pkt as a router forwards it: TTL one less, header checksum
// updated.
func routed(pkt []byte) []byte {
	p := bytes.Clone(pkt)
	p[8]--
	p[10], p[11] = 0, 0
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(p[i])<<8 | uint32(p[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	p[10], p[11] = byte(^sum>>8), byte(^sum)
	return p
}

// The data path stops while the device watch has seen nothing (a TUN read
// that fails with the link still up): Run returns ErrDeviceLost at once.
// It used to wait for its other goroutines (the watch) before cancelling
// them, and hung: weftd neither forwarded nor exited.
func TestRunEndsWhenTheDataPathStops(t *testing.T) {
	cfg, err := subnet.ParseConfig([]byte(`{"Network":"10.244.0.0/16","Backend":{"Type":"udp"}}`))
	if err != nil {
		t.Fatal(err)
	}
	n := newFakeNode(t, overlaytest.NewNetwork(), cfg, "192.0.2.1", "10.244.1.0/24")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := n.b.Start(ctx, n.lease); err != nil {
		t.Fatal(err)
	}
	defer n.b.Close()
	go func() { n.done <- n.b.Run(ctx) }()
	n.b.Apply([]subnet.Lease{}, nil)
	_ = n.tun.Close()
	select {
	case err := <-n.done:
		if !errors.Is(err, backend.ErrDeviceLost) {
			t.Fatalf("Run after the TUN closed: %v, want ErrDeviceLost", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run still running 10 s after its data path stopped")
	}
}
