//go:build !unit

package policy

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/weftnet/weft/testbed"
)

// IPv6 policy cases on the node's containers (IPv6 addresses as
// fd10:244:1::2-4 on the bridge, fd10:244:2::2 routed).
var enforceCases6 = []struct{ name, yaml string }{
	{"no policy", ""},
	{"deny all ingress in x", np + "metadata: {name: d, namespace: x}\nspec: {podSelector: {}, policyTypes: [Ingress]}"},
	{"deny all egress in y", np + "metadata: {name: d, namespace: \"y\"}\nspec: {podSelector: {}, policyTypes: [Egress]}"},
	{"x/a: tcp 80 from x/b, udp 81 from namespace team=blue", np + "metadata: {name: d, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from: [{podSelector: {matchLabels: {pod: b}}}]\n    ports: [{port: 80}]\n  - from: [{namespaceSelector: {matchLabels: {team: blue}}}]\n    ports: [{port: 81, protocol: UDP}]"},
	{"egress of y/c to fd10:244::/32 except the bridge's /64 on tcp 80-81, and to x/b", np + "metadata: {name: d, namespace: \"y\"}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - to: [{ipBlock: {cidr: \"fd10:244::/32\", except: [\"fd10:244:1::/64\"]}}]\n    ports: [{port: 80, endPort: 81, protocol: TCP}]\n  - to: [{namespaceSelector: {}, podSelector: {matchLabels: {pod: b}}}]"},
	{"x: ingress from IPv6 ipBlock of the bridge but x/b, udp only", np + "metadata: {name: d, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - from: [{ipBlock: {cidr: \"fd10:244:1::/64\", except: [\"fd10:244:1::3/128\"]}}, {ipBlock: {cidr: 10.0.0.0/8}}]\n    ports: [{protocol: UDP}]"},
}

// TestEnforceIPv6InNamespaces: every policy case holds over IPv6 as over
// IPv4 (bridged on the node, routed to and from another, from the node),
// probed in both families and compared with the reference model.
func TestEnforceIPv6InNamespaces(t *testing.T) {
	nd := newNode(t)
	e := NewEnforcer(EnforcerOptions{NetNS: int(nd.nsFd.Fd()), Bridge: testBridge})
	defer e.Remove()
	for _, tc := range enforceCases6 {
		t.Run(tc.name, func(t *testing.T) {
			in := nd.apply(t, e, tc.yaml)
			nd.expect(t, in, nd.matrix6(t))
			if tc.name == "deny all ingress in x" {
				nd.expect(t, in, nd.matrix(t))
			}
		})
	}
	d, err := e.Drops()
	if err != nil {
		t.Fatal(err)
	}
	if d.Ingress == 0 || d.Egress == 0 {
		t.Errorf("drops %+v: want both directions counted", d)
	}
}

// TestDenyAllClosesIPv6WithoutBridge: an Enforcer given no bridge (routed
// traffic only) still isolates a container's IPv6 address: an IPv4-only
// rule set let every IPv6 packet through.
func TestDenyAllClosesIPv6WithoutBridge(t *testing.T) {
	nd := newNode(t)
	e := NewEnforcer(EnforcerOptions{NetNS: int(nd.nsFd.Fd())})
	defer e.Remove()
	dst := netip.AddrPortFrom(nd.ips6["a"], 80)
	if err := testbed.Probe(nd.ctrs["r"].Path(), "tcp", dst, 5*time.Second); err != nil {
		t.Fatalf("r -> x/a over IPv6 before any policy: %v (the test path does not work)", err)
	}
	nd.apply(t, e, np+"metadata: {name: d, namespace: x}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}")
	for _, proto := range []string{"tcp", "udp"} {
		if err := testbed.Probe(nd.ctrs["r"].Path(), proto, dst, 3*time.Second); err != testbed.ErrNoEcho {
			t.Errorf("%s r -> x/a over IPv6 under deny-all: %v, want dropped", proto, err)
		}
		if err := testbed.Probe(nd.ctrs["a"].Path(), proto, netip.AddrPortFrom(nd.ips6["r"], 80), 3*time.Second); err != testbed.ErrNoEcho {
			t.Errorf("%s x/a -> r over IPv6 under deny-all: %v, want dropped", proto, err)
		}
	}
	if out, err := nd.ctrs["r"].Run(context.Background(), "ping", "-6", "-c", "1", "-W", "2", nd.ips6["a"].String()); err == nil {
		t.Errorf("ICMPv6 echo r -> x/a under deny-all passed:\n%s", out)
	}
}

// TestNeighbourDiscoveryUnderDenyAll: containers isolated both ways, with
// their neighbour caches (and the host's) flushed, still find their
// neighbours over IPv6 (ICMPv6 neighbour and router messages pass): what
// the policy allows works, the rest stays dropped.
func TestNeighbourDiscoveryUnderDenyAll(t *testing.T) {
	nd := newNode(t)
	e := NewEnforcer(EnforcerOptions{NetNS: int(nd.nsFd.Fd()), Bridge: testBridge})
	defer e.Remove()
	nd.apply(t, e, np+"metadata: {name: d, namespace: x}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Egress]\n  ingress: [{from: [{ipBlock: {cidr: \"fd10:244::/32\"}}], ports: [{port: 80}]}]\n  egress: [{to: [{ipBlock: {cidr: \"fd10:244::/32\"}}], ports: [{port: 80}]}]")
	ctx := context.Background()
	for _, n := range []*testbed.NS{nd.host, nd.ctrs["a"], nd.ctrs["b"], nd.ctrs["c"]} {
		if out, err := n.Run(ctx, "ip", "-6", "neigh", "flush", "all"); err != nil {
			t.Fatalf("%s: %v %s", n.Name, err, out)
		}
	}
	for _, f := range []struct {
		from, to string
		port     uint16
		want     bool
	}{{"a", "b", 80, true}, {"a", "r", 80, true}, {"c", "a", 80, true}, {"a", "b", 81, false}, {"r", "b", 81, false}} {
		err := testbed.Probe(nd.ctrs[f.from].Path(), "tcp", netip.AddrPortFrom(nd.ips6[f.to], f.port), 5*time.Second)
		if (err == nil) != f.want {
			t.Errorf("%s -> %s tcp/%d over IPv6 with caches flushed: %v, want passing %v", f.from, f.to, f.port, err, f.want)
		}
	}
	out, err := nd.ctrs["a"].Run(ctx, "ip", "-6", "neigh", "show", "dev", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("x/a's IPv6 neighbours: %s", out)
}

// TestSpoofedIPv6SourceDropped: a container that borrows its neighbour's
// IPv6 address (to pass a policy that admits the neighbour) is stopped at
// the bridge and counted; the neighbour itself gets through.
func TestSpoofedIPv6SourceDropped(t *testing.T) {
	nd := newNode(t)
	e := NewEnforcer(EnforcerOptions{NetNS: int(nd.nsFd.Fd()), Bridge: testBridge})
	defer e.Remove()
	nd.apply(t, e, np+"metadata: {name: d, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from: [{podSelector: {matchLabels: {pod: b}}}]\n    ports: [{port: 90, protocol: UDP}]")
	received := listenAndSend(t, nd, "a", nd.ips6["a"], 90, func(send func(from string, src netip.Addr, msg string)) {
		// y/c takes x/b's IPv6 address as a second one and sends from it.
		if _, err := nd.ctrs["c"].Run(context.Background(), "ip", "addr", "add", nd.ips6["b"].String()+"/128", "dev", "eth0", "nodad"); err != nil {
			t.Fatal(err)
		}
		send("c", nd.ips6["b"], "spoofed")
		send("b", nd.ips6["b"], "genuine")
	})
	if slices.Contains(received, "spoofed") || !slices.Contains(received, "genuine") {
		t.Fatalf("x/a received %q: want the genuine datagrams only", received)
	}
	if d, err := e.Drops(); err != nil || d.Spoofed == 0 {
		t.Errorf("drops %+v (%v): want the spoofed datagrams counted", d, err)
	}
}

// listenAndSend listens on UDP addr:port in container to, runs sends
// (send sends three datagrams msg from container from with source src) and
// returns what arrived within 3 s.
func listenAndSend(t *testing.T, nd *node, to string, addr netip.Addr, port uint16, sends func(send func(from string, src netip.Addr, msg string))) []string {
	t.Helper()
	var pc net.PacketConn
	err := ns.WithNetNSPath(nd.ctrs[to].Path(), func(ns.NetNS) error {
		var err error
		pc, err = net.ListenPacket("udp", netip.AddrPortFrom(addr, port).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	got := make(chan string, 16)
	go func() {
		buf := make([]byte, 64)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			got <- string(buf[:n])
		}
	}()
	sends(func(from string, src netip.Addr, msg string) {
		t.Helper()
		err := ns.WithNetNSPath(nd.ctrs[from].Path(), func(ns.NetNS) error {
			c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, port)))
			if err != nil {
				return err
			}
			defer c.Close()
			for range 3 {
				if _, err := c.Write([]byte(msg)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	deadline := time.After(3 * time.Second)
	var received []string
	for {
		select {
		case m := <-got:
			received = append(received, m)
		case <-deadline:
			return received
		}
	}
}
