//go:build !unit

package wireguard

import (
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/testbed"
)

// The backend's TUN (the library's, offloads on) gets weft's TCP writer, and
// the kernel takes its frames: superpackets of IPv4 and IPv6 runs, single
// TCP packets and, through the library, UDP.
func TestWireGuardTUNWritesWithoutCopy(t *testing.T) {
	bed := testbed.ForTest(t, "wgtw", 2)
	n := startNodeWith(t, bed.Hosts[0], `{"Network":"10.244.0.0/16","IPv6Network":"fd00:10::/48","EnableIPv6":true,"Backend":{"Type":"wireguard"}}`,
		"10.244.1.0/24", "fd00:10:0:1::/64")
	w, ok := n.b.run.tun.(*tcpWriteTUN)
	if !ok {
		t.Fatalf("the device's TUN is %T, want weft's TCP writer on the library's TUN", n.b.run.tun)
	}
	rxPackets := func() uint64 {
		var rx uint64
		err := ns.WithNetNSPath(bed.Hosts[0].NS.Path(), func(ns.NetNS) error {
			link, err := netlink.LinkByName(n.dev)
			if err == nil {
				rx = link.Attrs().Statistics.RxPackets
			}
			return err
		})
		if err != nil {
			t.Fatalf("link %s: %v", n.dev, err)
		}
		return rx
	}
	before := rxPackets()
	bufs := batch() // 128 packets: 3 runs (2 IPv4, 1 IPv6), 3 single TCP, 3 UDP or ICMP
	got, err := w.Write(bufs, wgOffset)
	if got != len(bufs) || err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil (the kernel refused a frame)", got, err, len(bufs))
	}
	rx := rxPackets() - before
	t.Logf("the TUN received %d packets", rx)
	if rx != 9 {
		t.Fatalf("the TUN received %d packets, want 9 (3 superpackets, 6 single)", rx)
	}
}
