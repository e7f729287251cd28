//go:build !unit

package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
)

// TestPolicyUDPFlowOutlivesChange pins down what "existing connections keep
// going" (docs/policy.md) means for UDP: a datagram on the address and port
// pair of a flow that conntrack still remembers (30 s after its last
// datagram) continues that flow after a policy change refuses it, even from
// a new socket; a datagram from another local port is a new flow and is
// refused. (A probe that lets the kernel pick its local port can land on
// such a pair by chance: that made TestPolicyConformanceMatrix flaky.)
func TestPolicyUDPFlowOutlivesChange(t *testing.T) {
	c := newCluster(t, 2, cluster.Options{})
	e := newMatrixEnv(t, c)
	e.labelNamespaces("x", "y", "z")
	// Cross-host, as x/c -> y/a in the matrix.
	xc := e.addPod("x", "c", c.Nodes[0])
	ya := e.addPod("y", "a", c.Nodes[1])
	dst := netip.AddrPortFrom(ya.ctr.IP, 81)
	const oldPort, newPort = 20001, 20002
	probe := func(port uint16) error {
		err := testbed.ProbeFrom(xc.ctr.NS.Path(), "udp", port, dst, 3*time.Second)
		if err != nil && err != testbed.ErrNoEcho {
			t.Fatalf("probe from port %d: %v", port, err)
		}
		return err
	}
	flow := fmt.Sprintf("src=%s dst=%s sport=%d dport=81", xc.ctr.IP, ya.ctr.IP, oldPort)
	conntrack := func() string {
		out := runIn(t, ctxFor(t, 10*time.Second), c.Nodes[1].Host.NS, "cat", "/proc/net/nf_conntrack")
		var lines []string
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "dport=81") && strings.Contains(l, ya.ctr.IP.String()) {
				lines = append(lines, strings.Join(strings.Fields(l), " "))
			}
		}
		return strings.Join(lines, "\n")
	}

	e.apply("allow-x", npYAML("y", "upd", "  podSelector: {}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {ns: x}}}]"))
	if err := probe(oldPort); err != nil {
		t.Fatalf("x/c:%d -> y/a udp/81 with y open to x: %v", oldPort, err)
	}
	if ct := conntrack(); !strings.Contains(ct, flow) {
		t.Fatalf("no conntrack entry for %s on y/a's node:\n%s", flow, ct)
	}
	e.apply("only-z", npYAML("y", "upd", "  podSelector: {}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {ns: z}}}]\n    ports: [{port: 80}]"))
	drops := counter(metrics(t, c.Nodes[1]), "weft_policy_drops_total", "ingress")

	// A new socket on the remembered pair continues the flow.
	if err := probe(oldPort); err != nil {
		t.Errorf("x/c:%d -> y/a udp/81 after the update: %v, want the remembered flow to go on (documented choice)\nconntrack on y/a's node:\n%s", oldPort, err, conntrack())
	}
	if d := counter(metrics(t, c.Nodes[1]), "weft_policy_drops_total", "ingress"); d != drops {
		t.Errorf("ingress drops went from %v to %v for a remembered flow", drops, d)
	}
	// Another local port is a new flow: refused, and counted as a drop.
	if err := probe(newPort); err != testbed.ErrNoEcho {
		t.Errorf("x/c:%d -> y/a udp/81 after the update: %v, want refused (a new flow)\nconntrack on y/a's node:\n%s", newPort, err, conntrack())
	}
	if d := counter(metrics(t, c.Nodes[1]), "weft_policy_drops_total", "ingress"); d <= drops {
		t.Errorf("ingress drops %v after a refused new flow, want more than %v", d, drops)
	}
	t.Logf("conntrack on y/a's node after the update:\n%s", conntrack())
}
