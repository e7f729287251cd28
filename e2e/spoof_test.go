//go:build !unit

package e2e

import (
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
)

// A container with CAP_NET_RAW forges the source address of a neighbour
// container on its own host (inside the node's subnet, so the node-level
// guard lets it pass) to get past a NetworkPolicy that admits only that
// neighbour, on the same host and on another one. Policy by source address
// holds only if each container's port accepts only that container's own
// address. Controls: the neighbour itself gets through (the policy admits
// it, the forged packets were well-formed) and the attacker with its own
// address does not (the policy is in force). Then ARP: the attacker claims
// the neighbour's address in ARP requests to the server, which must keep
// the neighbour's MAC address for it. Over udp and over wireguard (issue
// 19: the other host is behind WireGuard, whose allowed IPs check only the
// node's subnet, not which container sent).
func TestContainerCannotForgeNeighbourSource(t *testing.T) {
	t.Run("udp", func(t *testing.T) { containerCannotForgeNeighbourSource(t, cluster.DefaultNetworkConfig) })
	t.Run("wireguard", func(t *testing.T) { containerCannotForgeNeighbourSource(t, wireGuardConfig) })
}

func containerCannotForgeNeighbourSource(t *testing.T, networkConfig string) {
	const count = 50
	c := newCluster(t, 2, cluster.Options{NetworkConfig: networkConfig})
	e := newMatrixEnv(t, c)
	h1, h2 := c.Nodes[0], c.Nodes[1]
	friend := e.addPod("x", "friend", h1)
	attacker := e.addPod("x", "evil", h1)
	local := e.addPod("x", "srv", h1)
	remote := e.addPod("x", "srv", h2)
	e.apply("only-friend", npYAML("x", "only-friend",
		"  podSelector: {matchLabels: {pod: srv}}\n  policyTypes: [Ingress]\n"+
			"  ingress:\n  - from:\n    - podSelector: {matchLabels: {pod: friend}}"))

	const friendPort, ownPort, forgedPort = 9997, 9998, 9999
	type target struct {
		name string
		srv  *podRef
		wait map[uint16]func() int
	}
	targets := []*target{{name: "same host", srv: local}, {name: "other host", srv: remote}}
	for _, tg := range targets {
		tg.wait = map[uint16]func() int{}
		for _, port := range []uint16{friendPort, ownPort, forgedPort} {
			tg.wait[port] = startUDPCount(t, tg.srv.ctr.NS, netip.AddrPortFrom(tg.srv.ctr.IP, port), 10)
		}
	}
	before := metrics(t, h1)
	for _, tg := range targets {
		dst := tg.srv.ctr.IP
		rawSendIn(t, friend.ctr.NS, count, ipv4UDP(friend.ctr.IP, dst, friendPort, []byte("friend")))
		rawSendIn(t, attacker.ctr.NS, count, ipv4UDP(attacker.ctr.IP, dst, ownPort, []byte("own")))
		rawSendIn(t, attacker.ctr.NS, count, ipv4UDP(friend.ctr.IP, dst, forgedPort, []byte("forged")))
	}
	for _, tg := range targets {
		fromFriend, own, forged := tg.wait[friendPort](), tg.wait[ownPort](), tg.wait[forgedPort]()
		t.Logf("%s: from the neighbour %d, attacker's own source %d, attacker forging the neighbour %d (of %d each)",
			tg.name, fromFriend, own, forged, count)
		if forged != 0 {
			t.Errorf("%s: %d of %d datagrams forging the neighbour's source got past the policy (want 0)", tg.name, forged, count)
		}
		if fromFriend == 0 {
			t.Errorf("%s: control: the neighbour's own datagrams were not delivered: the test proves nothing", tg.name)
		}
		if own != 0 {
			t.Errorf("%s: control: %d datagrams with the attacker's own source were delivered: the policy is not in force", tg.name, own)
		}
	}

	// ARP spoofing: the server knows the neighbour's MAC address; the
	// attacker claims the neighbour's address in ARP requests to it (a
	// kernel updates its entry from those), so that replies meant for the
	// neighbour come to the attacker.
	ctx := ctxFor(t, time.Minute)
	if out, err := local.ctr.Ping(ctx, friend.ctr.IP, 1); err != nil {
		t.Fatalf("server -> neighbour ping: %v\n%s", err, out)
	}
	friendMAC, attackerMAC := linkMAC(t, friend.ctr.NS), linkMAC(t, attacker.ctr.NS)
	neigh := func() string {
		out, err := local.ctr.NS.Run(ctx, "ip", "neigh", "show", friend.ctr.IP.String())
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := neigh(); !strings.Contains(got, friendMAC) {
		t.Fatalf("control: the server's neighbour entry for %v is %q, want %s", friend.ctr.IP, got, friendMAC)
	}
	time.Sleep(1500 * time.Millisecond) // past the kernel's ARP locktime (1 s)
	const arps = 20
	runIn(t, ctx, attacker.ctr.NS, "env", roleEnv+"=arpsend", os.Args[0], "eth0", friend.ctr.IP.String(), local.ctr.IP.String(), strconv.Itoa(arps))
	if got := neigh(); strings.Contains(got, attackerMAC) || !strings.Contains(got, friendMAC) {
		t.Errorf("after ARP spoofing the server's neighbour entry for %v is %q: want the neighbour's %s, not the attacker's %s", friend.ctr.IP, got, friendMAC, attackerMAC)
	}

	after := metrics(t, h1)
	n := counter(after, "weft_policy_drops_total", "spoofed-source") - counter(before, "weft_policy_drops_total", "spoofed-source")
	t.Logf("host 1 weft_policy_drops_total{direction=\"spoofed-source\"} +%v", n)
	if n < 2*count+arps {
		t.Errorf("weft_policy_drops_total{direction=\"spoofed-source\"} grew by %v, want at least %v (forged datagrams and ARP)", n, 2*count+arps)
	}
	// The attacker's own traffic still flows (its port binding is right).
	if out, err := attacker.ctr.Ping(ctx, friend.ctr.IP, 2); err != nil {
		t.Errorf("attacker -> neighbour ping with its own address: %v\n%s", err, out)
	}
}

// linkMAC is the MAC address of eth0 in ns.
func linkMAC(t *testing.T, ns *testbed.NS) string {
	t.Helper()
	out, err := ns.Run(ctxFor(t, 10*time.Second), "ip", "-o", "link", "show", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(out)
	for i, w := range f {
		if w == "link/ether" && i+1 < len(f) {
			return f[i+1]
		}
	}
	t.Fatalf("no MAC address in %q", out)
	return ""
}
