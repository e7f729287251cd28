//go:build !unit

package e2e

import (
	"testing"

	"github.com/weftnet/weft/testbed/cluster"
)

// A container on host 2 reaches a TCP service in host 1's root namespace
// at host 1's underlay address, with ipMasq off: the request leaves host 2
// on the underlay with the container's address, host 1 answers through the
// overlay with inner source 192.0.2.1 (its PublicIP), which host 2 must
// accept from host 1 and from nobody else.
func TestContainerReachesPeerHostService(t *testing.T) {
	c := newCluster(t, 2, cluster.Options{})
	ctr := addContainer(t, c.Nodes[1], "hs")
	host1 := c.Nodes[0].Host
	transfer(t, ctr.NS, host1.NS, host1.IP.String(), 1<<20)

	fams := metrics(t, c.Nodes[1])
	if n := dropCount(fams, "rx", "spoofed_inner_source"); n != 0 {
		t.Fatalf("node 2 counted %v spoofed_inner_source drops:\n%s", n, describeDrops(fams))
	}
}
