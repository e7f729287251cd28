//go:build !unit

package e2e

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
)

// forgedFrom is an outer IPv4/UDP packet from src:sport to dst:dport
// carrying a weft data datagram whose inner UDP packet goes from innerSrc
// to innerDst:port.
func forgedFrom(src netip.Addr, sport uint16, dst netip.Addr, dport uint16, innerSrc, innerDst netip.Addr, port uint16) []byte {
	inner := append(weftHeader(1, 1, 0), ipv4UDP(innerSrc, innerDst, port, []byte("forged"))...)
	p := ipv4UDP(src, dst, dport, inner)
	binary.BigEndian.PutUint16(p[20:], sport)
	return p
}

// An underlay host (node 3) forges datagrams from a known peer's address
// (node 1's) to a node running --queues 4 (node 2: a SO_REUSEPORT group
// of 4 receive sockets, which the kernel picks by a hash of the 4-tuple,
// and send-only sockets on Port+1 .. Port+7):
//   - from 64 source ports outside node 1's 8 (Port-1, Port+8, ephemeral
//     ones, ...: all 4 receive sockets get some), inner source in node 1's
//     subnet: unknown_peer;
//   - from each of the 8 source ports in its range: an inner source in
//     node 3's subnet, in node 2's own subnet or in no lease
//     (spoofed_inner_source), an inner destination in node 3's subnet (a
//     relay through node 2: wrong_destination), node 2's subnet broadcast
//     address (broadcast_destination);
//   - to each send-only port (Port+1 .. Port+7) from node 1's port: the
//     socket filter drops them (the kernel counts them in Udp.InErrors;
//     weft never sees them).
//
// None reaches a container and every one is counted by reason. The control,
// from the same 8 ports with an inner source in node 1's subnet to node 2's
// container, is delivered: the forgeries were well-formed and reached the
// sockets, and that is the limit docs/reliability.md states (nothing is
// authenticated on the udp backend).
func TestForgedPeerSourcePortsWithQueues(t *testing.T) {
	const queues, count, port = 4, 10, 8285
	c := newCluster(t, 3, cluster.Options{Queues: queues})
	requireQueues(t, c, queues)
	peer, victim, attacker := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	pc := addContainer(t, peer, "wp")
	vc := addContainer(t, victim, "wv")
	ac := addContainer(t, attacker, "wa")
	vs := nodeSubnet(t, victim)
	broadcast := netip.AddrFrom4([4]byte(vs.Addr().As4()))
	b4 := broadcast.As4()
	b4[3] = 255 // a /24
	broadcast = netip.AddrFrom4(b4)
	own := vs.Addr().Next().Next().Next().Next() // in node 2's subnet, not vc

	const outPort, inPort, relayPort, sendOnlyPort, controlPort = 9001, 9002, 9003, 9004, 9005
	waitOut := startUDPCount(t, vc.NS, netip.AddrPortFrom(vc.IP, outPort), 15)
	waitIn := startUDPCount(t, vc.NS, netip.AddrPortFrom(vc.IP, inPort), 15)
	waitRelay := startUDPCount(t, ac.NS, netip.AddrPortFrom(ac.IP, relayPort), 15)
	waitSendOnly := startUDPCount(t, vc.NS, netip.AddrPortFrom(vc.IP, sendOnlyPort), 15)
	waitControl := startUDPCount(t, vc.NS, netip.AddrPortFrom(vc.IP, controlPort), 15)

	from, to := peer.Host.IP, victim.Host.IP
	want := map[string]int{}
	var pkts [][]byte
	add := func(reason string, p []byte) {
		pkts = append(pkts, p)
		if reason != "" {
			want[reason] += count
		}
	}
	outside := []uint16{port - 1, port + 8, port + 9, port - 8, 1, 1024, 8080, 32768, 40000, 60999, 65535}
	for sp := uint16(50000); len(outside) < 64; sp += 97 {
		outside = append(outside, sp)
	}
	for _, sp := range outside {
		add("unknown_peer", forgedFrom(from, sp, to, port, pc.IP, vc.IP, outPort))
	}
	for k := uint16(0); k < 8; k++ {
		sp := port + k
		add("spoofed_inner_source", forgedFrom(from, sp, to, port, ac.IP, vc.IP, inPort))
		add("spoofed_inner_source", forgedFrom(from, sp, to, port, own, vc.IP, inPort))
		add("spoofed_inner_source", forgedFrom(from, sp, to, port, unleasedAddr(t, c), vc.IP, inPort))
		add("wrong_destination", forgedFrom(from, sp, to, port, pc.IP, ac.IP, relayPort))
		add("broadcast_destination", forgedFrom(from, sp, to, port, pc.IP, broadcast, inPort))
		add("", forgedFrom(from, sp, to, port, pc.IP, vc.IP, controlPort))
	}
	for k := uint16(1); k < 8; k++ {
		add("", forgedFrom(from, port, to, port+k, pc.IP, vc.IP, sendOnlyPort))
	}

	before, kernelBefore := metrics(t, victim), udpStats(t, victim.Host.NS)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{roleEnv + "=rawsend", self, strconv.Itoa(count)}
	for _, p := range pkts {
		args = append(args, hex.EncodeToString(p))
	}
	t.Logf("node 3 forging node 1's address: %s", runIn(t, ctxFor(t, time.Minute), attacker.Host.NS, "env", args...))

	var after map[string]int64
	err = testbed.WaitFor(ctxFor(t, 10*time.Second), 100*time.Millisecond, func() error {
		fams := metrics(t, victim)
		after = udpStats(t, victim.Host.NS)
		for reason, n := range want {
			if got := dropCount(fams, "rx", reason) - dropCount(before, "rx", reason); got < float64(n) {
				return fmt.Errorf("weft_drops_total{direction=rx,reason=%s} grew by %v, want %d (%s)", reason, got, n, describeDrops(fams))
			}
		}
		if got := after["Udp.InErrors"] - kernelBefore["Udp.InErrors"]; got < 7*count {
			return fmt.Errorf("Udp.InErrors grew by %d, want at least %d (the send-only sockets' filter)", got, 7*count)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	fams := metrics(t, victim)
	for reason, n := range want {
		t.Logf("node 2: %s +%v (sent %d)", reason, dropCount(fams, "rx", reason)-dropCount(before, "rx", reason), n)
	}
	t.Logf("node 2: Udp.InErrors +%d (sent %d to the send-only ports)", after["Udp.InErrors"]-kernelBefore["Udp.InErrors"], 7*count)
	if got := after["Udp.RcvbufErrors"] - kernelBefore["Udp.RcvbufErrors"]; got != 0 {
		t.Logf("note: %d datagrams overflowed a socket buffer", got)
	}
	for _, w := range []struct {
		what string
		got  int
	}{
		{"outside the peer's source ports", waitOut()},
		{"inner source not the peer's", waitIn()},
		{"relayed to node 3's container", waitRelay()},
		{"to a send-only port", waitSendOnly()},
	} {
		if w.got != 0 {
			t.Errorf("%s: %d datagrams reached a container, want 0", w.what, w.got)
		}
	}
	control := waitControl()
	t.Logf("control: %d of %d delivered", control, 8*count)
	if got := control; got < 8*count/2 {
		t.Errorf("control: %d of %d forged datagrams with the peer's own subnet as source were delivered: the forgeries did not reach weft's sockets, the test proves nothing", got, 8*count)
	}
	if out, err := pc.Ping(ctxFor(t, 30*time.Second), vc.IP, 3); err != nil {
		t.Fatalf("ping node 1 -> node 2 after the forgeries: %v\n%s", err, out)
	}
}
