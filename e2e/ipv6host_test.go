//go:build !unit

package e2e

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
)

// A container isolated for egress (deny all) must not reach services of its
// own host over IPv6 link-local either: weft gives containers IPv4 only and
// enforces policy on IPv4, but the bridge and the container have IPv6
// link-local addresses, and a host service listening on [::] answers on
// them. Controls: the container pings the bridge's link-local address
// (ICMPv6 passes), reaches the service over IPv4 without a policy, and not
// with it.
func TestEgressIsolatedContainerCannotReachHostOverIPv6(t *testing.T) {
	c := newCluster(t, 2, cluster.Options{})
	e := newMatrixEnv(t, c)
	h := c.Nodes[0]
	p := e.addPod("x", "a", h)
	const port = 7777
	srv, err := testbed.ServeEcho(h.Host.NS.Path(), netip.IPv6Unspecified(), []uint16{port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	out := runIn(t, ctxFor(t, 10*time.Second), h.Host.NS, "ip", "-6", "-o", "addr", "show", "dev", "weftbr0", "scope", "link")
	f := strings.Fields(out)
	var ll netip.Addr
	for i, w := range f {
		if w == "inet6" && i+1 < len(f) {
			if pfx, err := netip.ParsePrefix(f[i+1]); err == nil {
				ll = pfx.Addr()
			}
		}
	}
	if !ll.IsValid() {
		t.Fatalf("no link-local address on weftbr0: %q", out)
	}
	// The zone by index: Go caches zone names process-wide, across namespaces.
	idx, _, _ := strings.Cut(runIn(t, ctxFor(t, 10*time.Second), p.ctr.NS, "ip", "-o", "link", "show", "eth0"), ":")
	v6 := netip.AddrPortFrom(ll.WithZone(idx), port)
	gw := netip.AddrPortFrom(nodeSubnet(t, h).Addr().Next(), port)
	// The path is there: the container pings the bridge's link-local address
	// (once its own is past DAD), and reaches the service over IPv4.
	if err := testbed.WaitFor(ctxFor(t, 20*time.Second), 200*time.Millisecond, func() error {
		_, err := p.ctr.NS.Run(ctxFor(t, 10*time.Second), "ping", "-6", "-c", "1", "-W", "1", ll.WithZone("eth0").String())
		return err
	}); err != nil {
		t.Fatalf("control: the container cannot ping the bridge's link-local address %v: %v", ll, err)
	}
	if err := testbed.Probe(p.ctr.NS.Path(), "tcp", gw, 5*time.Second); err != nil {
		t.Fatalf("control: without a policy the container does not reach the host's service at %v: %v", gw, err)
	}
	before := counter(metrics(t, h), "weft_policy_drops_total", "ipv6-bridged")
	e.apply("deny-egress", npYAML("x", "deny-egress", "  podSelector: {}\n  policyTypes: [Egress]"))
	if err := testbed.Probe(p.ctr.NS.Path(), "tcp", gw, 3*time.Second); err != testbed.ErrNoEcho {
		t.Fatalf("control: with egress denied the container -> host over IPv4 (%v): %v, want refused", gw, err)
	}
	if err := testbed.Probe(p.ctr.NS.Path(), "tcp", v6, 3*time.Second); err != testbed.ErrNoEcho {
		t.Errorf("with egress denied the container -> host over IPv6 link-local (%v): %v, want refused", v6, err)
	}
	if got := counter(metrics(t, h), "weft_policy_drops_total", "ipv6-bridged"); got <= before {
		t.Errorf("weft_policy_drops_total{direction=\"ipv6-bridged\"} %v, want more than %v", got, before)
	}
}
