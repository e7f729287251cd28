//go:build !unit

package e2e

import (
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/weftnet/weft/testbed/cluster"
)

// A container isolated for ingress (deny all) must not receive datagrams
// a neighbour on its bridge sends to the subnet's broadcast address (or
// the limited broadcast 255.255.255.255): the bridge floods them to every
// port, and policy keyed on the destination address does not see the
// isolated container in them. Control: a non-isolated neighbour receives
// them (the sends were real).
func TestIsolatedContainerGetsNoBroadcast(t *testing.T) {
	const count = 20
	c := newCluster(t, 2, cluster.Options{})
	e := newMatrixEnv(t, c)
	h := c.Nodes[0]
	sender := e.addPod("x", "a", h)
	isolated := e.addPod("x", "b", h)
	open := e.addPod("y", "c", h)
	e.apply("deny", npYAML("x", "deny", "  podSelector: {matchLabels: {pod: b}}\n  policyTypes: [Ingress]"))
	bcast := netip.PrefixFrom(nodeSubnet(t, h).Addr(), nodeSubnet(t, h).Bits())
	last := bcast.Addr().As4()
	for i := bcast.Bits(); i < 32; i++ {
		last[i/8] |= 0x80 >> (i % 8)
	}
	for _, dst := range []netip.Addr{netip.AddrFrom4(last), netip.MustParseAddr("255.255.255.255")} {
		const port = 9911
		waitIsolated := startUDPCount(t, isolated.ctr.NS, netip.AddrPortFrom(netip.IPv4Unspecified(), port), 4)
		waitOpen := startUDPCount(t, open.ctr.NS, netip.AddrPortFrom(netip.IPv4Unspecified(), port), 4)
		runIn(t, ctxFor(t, time.Minute), sender.ctr.NS, "env", roleEnv+"=udpbcast", os.Args[0], netip.AddrPortFrom(dst, port).String(), strconv.Itoa(count))
		gotIsolated, gotOpen := waitIsolated(), waitOpen()
		t.Logf("to %v: isolated container received %d, open one %d (of %d)", dst, gotIsolated, gotOpen, count)
		if gotOpen == 0 {
			t.Errorf("control: to %v the non-isolated neighbour received nothing: the test proves nothing", dst)
		}
		if gotIsolated != 0 {
			t.Errorf("to %v: the ingress-isolated container received %d of %d broadcast datagrams from a container no policy admits", dst, gotIsolated, count)
		}
	}
}
