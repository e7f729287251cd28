//go:build !unit

package cni_test

import (
	"strings"
	"testing"
)

// Odd CNI_IFNAME values a runtime may pass: refused by the CNI library's
// check (length, '/', ':', spaces, "." and ".."), or by the kernel (an
// existing name), or taken as given; none leaves an allocation, a host
// veth or an interface in the container behind. "e%d" is a name the
// kernel expands ("e0") when it creates the link: the plugin then did not
// find the link it had made, failed, and left the veth pair (e0 in the
// container, its host end on the node) behind.
func TestOddIfNamesLeaveNothing(t *testing.T) {
	t.Parallel()
	h := newHost(t, "10.244.7.1/24", nil)
	ctr := newNetns(t, "wtc")
	good := h.confJSON(t, "1.1.0", nil)
	for _, ifname := range []string{"e%d", "lo", "a-very-long-interface-name", "eth0/x", "eth:0", "..", "eth 0", "\u00e9th0"} {
		out, perr := invoke(t, pluginCall{command: "ADD", containerID: "ctr-odd", netns: ctr.path(), ifname: ifname, stdin: good, inNetns: &h.ns})
		t.Logf("ADD %q: %+v", ifname, perr)
		if ifname == "e%d" && (perr == nil || perr.Code != 4 || !strings.Contains(perr.Msg, "CNI_IFNAME")) {
			t.Errorf("ADD %q: %+v, want code 4 naming CNI_IFNAME", ifname, perr)
		}
		if perr == nil {
			// Taken as given: DEL must remove it all.
			if _, derr := invoke(t, pluginCall{command: "DEL", containerID: "ctr-odd", netns: ctr.path(), ifname: ifname, stdin: good, inNetns: &h.ns}); derr != nil {
				t.Errorf("DEL %q after ADD %s: %+v", ifname, out, derr)
			}
		}
		if got := h.allocations(t); len(got) != 0 {
			t.Errorf("%q: allocations left: %v", ifname, got)
		}
		links := ctr.exec(t, "ip", "-o", "link", "show")
		if n := strings.Count(links, "\n"); n != 1 {
			t.Errorf("%q: the container has links other than lo:\n%s", ifname, links)
		}
		if host := h.ns.exec(t, "ip", "-o", "link", "show", "type", "veth"); strings.TrimSpace(host) != "" {
			t.Errorf("%q: host veths left:\n%s", ifname, host)
		}
	}
}
