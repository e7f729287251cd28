//go:build !unit

package cni_test

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// With ipMasq, traffic to outside the overlay is masqueraded (an "outside"
// namespace without a route back to 10.244.0.0/16 still answers) and
// overlay traffic keeps its source (a "peer" namespace in the overlay
// counts packets from the container's subnet). Everything happens inside
// test namespaces.
func TestIPMasq(t *testing.T) {
	t.Parallel()
	if testTools.iptables == "" {
		t.Fatal("ipMasq needs the iptables command (Debian: apt-get install iptables); it is not on PATH")
	}
	h := newHost(t, "10.244.7.1/24", map[string]any{"ipMasq": true})
	outside := newNetns(t, "wto")
	connect(t, h.ns, outside, "192.0.2.1/24", "192.0.2.2/24")
	peer := newNetns(t, "wtp")
	connect(t, h.ns, peer, "198.51.100.1/24", "198.51.100.2/24")
	peer.exec(t, "ip", "addr", "add", "10.244.9.1/32", "dev", "lo")
	peer.exec(t, "ip", "route", "add", "10.244.7.0/24", "via", "198.51.100.1")
	h.ns.exec(t, "ip", "route", "add", "10.244.9.0/24", "via", "198.51.100.2")
	peer.exec(t, "iptables", "-A", "INPUT", "-s", "10.244.7.0/24", "-p", "icmp")

	ctr, res := h.add(t)
	mustPing(t, ctr, "192.0.2.2")
	mustPing(t, ctr, "10.244.9.1")
	if n := counterOfFirstInputRule(t, peer); n < 1 {
		t.Fatalf("peer in the overlay saw %d packets from 10.244.7.0/24: overlay traffic was masqueraded", n)
	}
	rules := h.ns.exec(t, "iptables", "-t", "nat", "-S")
	if !strings.Contains(rules, "-s "+containerIP(t, res)+"/32") || !strings.Contains(rules, "-d 10.244.0.0/16") {
		t.Fatalf("nat rules do not masquerade %s outside 10.244.0.0/16:\n%s", containerIP(t, res), rules)
	}

	if out, err := h.cnitool("del", ctr.path()); err != nil {
		t.Fatalf("cnitool del: %v\n%s", err, out)
	}
	if rules := h.ns.exec(t, "iptables", "-t", "nat", "-S"); strings.Contains(rules, "CNI-") {
		t.Fatalf("masquerading rules left after DEL:\n%s", rules)
	}
}

// connect links two namespaces with a veth pair and addresses.
func connect(t *testing.T, a, b netns, addrA, addrB string) {
	t.Helper()
	ifA, ifB := "wl"+randomSuffix(t), "wl"+randomSuffix(t)
	a.exec(t, "ip", "link", "add", ifA, "type", "veth", "peer", "name", ifB, "netns", b.name)
	a.exec(t, "ip", "addr", "add", addrA, "dev", ifA)
	a.exec(t, "ip", "link", "set", ifA, "up")
	b.exec(t, "ip", "addr", "add", addrB, "dev", ifB)
	b.exec(t, "ip", "link", "set", ifB, "up")
}

func counterOfFirstInputRule(t *testing.T, n netns) int {
	t.Helper()
	out := n.exec(t, "iptables", "-L", "INPUT", "-v", "-n", "-x")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 3 {
		t.Fatalf("no rule in INPUT:\n%s", out)
	}
	fields := strings.Fields(lines[2])
	pkts, err := strconv.Atoi(fields[0])
	if err != nil {
		t.Fatalf("parse counter from %q: %v", lines[2], err)
	}
	return pkts
}

// The plugin masquerades only when asked to ("ipMasq": true) and weftd does
// not masquerade the node's traffic already (WEFT_IPMASQ=true, weftd
// --ip-masq): a container's traffic is never masqueraded by both.
func TestIPMasqLeftToWeftdWhenItMasquerades(t *testing.T) {
	t.Parallel()
	if testTools.iptables == "" {
		t.Fatal("ipMasq needs the iptables command (Debian: apt-get install iptables); it is not on PATH")
	}
	h := newHost(t, "10.244.7.1/24", nil)
	masqueraded := func(ip string) bool {
		return strings.Contains(h.ns.exec(t, "iptables", "-t", "nat", "-S", "POSTROUTING"), "-s "+ip+"/32")
	}
	if _, res := h.add(t); masqueraded(containerIP(t, res)) {
		t.Fatalf("no ipMasq option but %s is masqueraded", containerIP(t, res))
	}
	env := strings.Replace(subnetEnv("10.244.7.1/24"), "WEFT_IPMASQ=false", "WEFT_IPMASQ=true", 1)
	if err := os.WriteFile(h.subnetFile, []byte(env), 0o644); err != nil {
		t.Fatal(err)
	}
	h.writeConflist(t, map[string]any{"ipMasq": true})
	if _, res := h.add(t); masqueraded(containerIP(t, res)) {
		t.Fatalf("WEFT_IPMASQ=true (weftd masquerades) but the plugin masquerades %s too", containerIP(t, res))
	}
	if err := os.WriteFile(h.subnetFile, []byte(subnetEnv("10.244.7.1/24")), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, res := h.add(t); !masqueraded(containerIP(t, res)) {
		t.Fatalf("ipMasq=true and weftd does not masquerade, but %s has no rule", containerIP(t, res))
	}
}
