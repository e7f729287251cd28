//go:build !unit

package cni_test

import (
	"strings"
	"testing"
)

// A runtime (or an operator with cnitool) that names the node's own
// namespace as CNI_NETNS: the CNI library refuses that only after the
// plugin's ADD or DEL has run, so DEL with CNI_IFNAME=eth0 deleted the
// node's own eth0 (its underlay), and ADD configured the container's
// address and routes on the node and left them there behind the error.
// ADD and CHECK must refuse before they touch anything, and DEL (which
// the library then answers with the same error) must leave the node's
// links, addresses and routes: they stay, nothing is allocated.
func TestNodeNamespaceAsContainerRefused(t *testing.T) {
	t.Parallel()
	h := newHost(t, "10.244.7.1/24", nil)
	// The node's uplink, as the container's interface name.
	h.ns.exec(t, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "uplink0")
	h.ns.exec(t, "ip", "addr", "add", "192.0.2.10/24", "dev", "eth0")
	h.ns.exec(t, "ip", "link", "set", "eth0", "up")
	h.ns.exec(t, "ip", "link", "set", "uplink0", "up")
	h.ns.exec(t, "ip", "route", "add", "default", "via", "192.0.2.1")
	state := func() string {
		// Not the IPv6 link-local addresses: their DAD state changes by itself.
		return h.ns.exec(t, "ip", "-o", "link", "show") + h.ns.exec(t, "ip", "-o", "-4", "addr", "show") + h.ns.exec(t, "ip", "route", "show")
	}
	before := state()
	good := h.confJSON(t, "1.1.0", nil)
	for _, tc := range []struct{ command, ifname string }{
		{"DEL", "eth0"}, // the node's uplink
		{"ADD", "eth9"}, // a new name: ADD would have made and configured it
		{"ADD", "eth0"},
		{"CHECK", "eth0"},
	} {
		out, perr := invoke(t, pluginCall{command: tc.command, containerID: "ctr-own-netns", netns: h.ns.path(),
			ifname: tc.ifname, stdin: good, inNetns: &h.ns})
		if perr == nil {
			t.Errorf("%s %s with the node's own namespace as CNI_NETNS succeeded: %s", tc.command, tc.ifname, out)
		} else if perr.Code != 8 || !strings.Contains(perr.Msg+perr.Details, "CNI_NETNS") {
			t.Errorf("%s %s: got code %d %q %q, want code 8 naming CNI_NETNS", tc.command, tc.ifname, perr.Code, perr.Msg, perr.Details)
		}
		if after := state(); after != before {
			t.Fatalf("%s %s with the node's namespace as CNI_NETNS changed the node:\nbefore:\n%s\nafter:\n%s", tc.command, tc.ifname, before, after)
		}
	}
	if got := h.allocations(t); len(got) != 0 {
		t.Errorf("refused calls allocated addresses: %v", got)
	}
	// The same namespace by another path (/proc/self/ns/net of the plugin).
	if _, perr := invoke(t, pluginCall{command: "DEL", containerID: "ctr-own-netns", netns: "/proc/self/ns/net",
		ifname: "eth0", stdin: good, inNetns: &h.ns}); perr == nil || perr.Code != 8 {
		t.Errorf("DEL with CNI_NETNS=/proc/self/ns/net: %+v, want code 8", perr)
	}
	if after := state(); after != before {
		t.Fatalf("DEL with CNI_NETNS=/proc/self/ns/net changed the node:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
