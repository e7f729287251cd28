//go:build !unit

package cni_test

import (
	"strings"
	"testing"
)

// A DEL whose CNI_NETNS names another container's namespace (a runtime's
// mistake, a namespace path reused): the plugin must remove its own
// attachment (the veth pair goes with its host end, whichever namespace
// the container end is in) and leave the other container's interface of
// the same name alone. Before, DEL deleted CNI_IFNAME in whatever
// namespace CNI_NETNS named.
func TestDelWithAnotherContainersNetNS(t *testing.T) {
	t.Parallel()
	h := newHost(t, "10.244.7.1/24", nil)
	good := h.confJSON(t, "1.1.0", nil)
	a, b := newNetns(t, "wtc"), newNetns(t, "wtc")
	for _, c := range []struct {
		id string
		ns netns
	}{{"ctr-a", a}, {"ctr-b", b}} {
		if out, perr := invoke(t, pluginCall{command: "ADD", containerID: c.id, netns: c.ns.path(), ifname: "eth0", stdin: good, inNetns: &h.ns}); perr != nil {
			t.Fatalf("ADD %s: %+v %s", c.id, perr, out)
		}
	}
	if _, perr := invoke(t, pluginCall{command: "DEL", containerID: "ctr-a", netns: b.path(), ifname: "eth0", stdin: good, inNetns: &h.ns}); perr != nil {
		t.Fatalf("DEL ctr-a with ctr-b's namespace: %+v", perr)
	}
	if out, err := b.execErr("ip", "link", "show", "eth0"); err != nil {
		t.Errorf("DEL of ctr-a deleted ctr-b's eth0: %v\n%s", err, out)
	}
	if out, err := a.execErr("ip", "link", "show", "eth0"); err == nil {
		t.Errorf("ctr-a's eth0 is still there after its DEL:\n%s", out)
	}
	if got := h.allocations(t); len(got) != 1 {
		t.Errorf("allocations after ctr-a's DEL: %v, want ctr-b's alone", got)
	}
	if out := b.exec(t, "ping", "-c", "1", "-W", "2", "10.244.7.1"); !strings.Contains(out, "1 received") {
		t.Errorf("ctr-b lost its network:\n%s", out)
	}
	if _, perr := invoke(t, pluginCall{command: "DEL", containerID: "ctr-b", netns: b.path(), ifname: "eth0", stdin: good, inNetns: &h.ns}); perr != nil {
		t.Fatalf("DEL ctr-b: %+v", perr)
	}
	if out, err := b.execErr("ip", "link", "show", "eth0"); err == nil {
		t.Errorf("ctr-b's eth0 is still there after its DEL:\n%s", out)
	}
}
