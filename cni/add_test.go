//go:build !unit

package cni_test

import (
	"strings"
	"testing"
)

func TestAddCheckDelWithCnitool(t *testing.T) {
	t.Parallel()
	h := newHost(t, "10.244.7.1/24", nil)
	ctr1, res1 := h.add(t)
	ctr2, res2 := h.add(t)

	ip1, ip2 := containerIP(t, res1), containerIP(t, res2)
	if ip1 == ip2 {
		t.Fatalf("both containers got %s", ip1)
	}
	if len(res1.Interfaces) != 3 || res1.Interfaces[0].Name != "weftbr0" || res1.Interfaces[2].Name != "eth0" ||
		res1.Interfaces[2].Sandbox != ctr1.path() {
		t.Fatalf("unexpected interfaces: %+v", res1.Interfaces)
	}
	if got := res1.IPs[0]; got.Gateway.String() != "10.244.7.1" || got.Address.String() != ip1+"/24" ||
		got.Interface == nil || *got.Interface != 2 {
		t.Fatalf("unexpected ip config: %+v", got)
	}
	if len(res1.Routes) != 2 || res1.Routes[0].Dst.String() != "10.244.0.0/16" || res1.Routes[0].GW.String() != "10.244.7.1" ||
		res1.Routes[1].Dst.String() != "0.0.0.0/0" || res1.Routes[1].GW.String() != "10.244.7.1" {
		t.Fatalf("unexpected routes: %+v", res1.Routes)
	}
	if res1.CNIVersion != "1.1.0" {
		t.Fatalf("result cniVersion %q, want 1.1.0", res1.CNIVersion)
	}

	mustPing(t, ctr1, "10.244.7.1")
	mustPing(t, ctr1, ip2)
	mustPing(t, ctr2, ip1)

	if mtu := ctr1.exec(t, "cat", "/sys/class/net/eth0/mtu"); strings.TrimSpace(mtu) != "1468" {
		t.Fatalf("container MTU %q, want 1468", mtu)
	}
	if mtu := h.ns.exec(t, "cat", "/sys/class/net/weftbr0/mtu"); strings.TrimSpace(mtu) != "1468" {
		t.Fatalf("bridge MTU %q, want 1468", mtu)
	}
	if fwd := h.ns.exec(t, "cat", "/proc/sys/net/ipv4/ip_forward"); strings.TrimSpace(fwd) != "1" {
		t.Fatalf("ip_forward in host namespace is %q, want 1", fwd)
	}

	if out, err := h.cnitool("check", ctr1.path()); err != nil {
		t.Fatalf("cnitool check: %v\n%s", err, out)
	}
	// CHECK notices a missing route.
	ctr1.exec(t, "ip", "route", "del", "default")
	if out, err := h.cnitool("check", ctr1.path()); err == nil || !strings.Contains(out, "route") {
		t.Fatalf("cnitool check after removing the default route: err %v, output %s", err, out)
	}

	if out, err := h.cnitool("del", ctr1.path()); err != nil {
		t.Fatalf("cnitool del: %v\n%s", err, out)
	}
	if out, err := ctr1.execErr("ip", "link", "show", "eth0"); err == nil {
		t.Fatalf("eth0 still in container after DEL:\n%s", out)
	}
	if got := h.allocations(t); len(got) != 1 || got[0] != ip2 {
		t.Fatalf("allocations after DEL of %s: %v, want [%s]", ip1, got, ip2)
	}
	if out, err := h.cnitool("del", ctr1.path()); err != nil {
		t.Fatalf("second cnitool del: %v\n%s", err, out)
	}
	mustPing(t, ctr2, "10.244.7.1")
}

func TestAddTwiceIsAnError(t *testing.T) {
	t.Parallel()
	h := newHost(t, "10.244.7.1/24", nil)
	ctr, res := h.add(t)
	out, err := h.cnitool("add", ctr.path())
	if err == nil || !strings.Contains(out, "already exists") {
		t.Fatalf("second ADD: err %v, output %s; want an \"already exists\" error", err, out)
	}
	// The failed ADD must not have disturbed the first attachment.
	if got := h.allocations(t); len(got) != 1 || got[0] != containerIP(t, res) {
		t.Fatalf("allocations %v, want [%s]", got, containerIP(t, res))
	}
	mustPing(t, ctr, "10.244.7.1")

	// An interface that exists in the namespace (not made by weft) is an error too.
	other := newNetns(t, "wtc")
	other.exec(t, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
	_, perr := invoke(t, pluginCall{command: "ADD", containerID: "ctr-dummy", netns: other.path(), ifname: "eth0",
		stdin: h.confJSON(t, "1.1.0", nil), inNetns: &h.ns})
	if perr == nil || !strings.Contains(perr.Msg, "already exists") {
		t.Fatalf("ADD over an existing eth0: %+v", perr)
	}
	if got := h.allocations(t); len(got) != 1 {
		t.Fatalf("failed ADD leaked an address: %v", got)
	}
}

func TestNotDefaultGatewayAndCustomRoutes(t *testing.T) {
	t.Parallel()
	h := newHost(t, "10.244.7.1/24", map[string]any{
		"isDefaultGateway": false,
		"hairpinMode":      true,
		"routes":           []map[string]string{{"dst": "192.0.2.0/24"}, {"dst": "198.51.100.0/24", "gw": "10.244.7.1"}},
		"dns":              map[string]any{"nameservers": []string{"10.96.0.10"}},
	})
	ctr, res := h.add(t)
	routes := ctr.exec(t, "ip", "-4", "route")
	for _, want := range []string{"10.244.0.0/16 via 10.244.7.1", "192.0.2.0/24 via 10.244.7.1", "198.51.100.0/24 via 10.244.7.1"} {
		if !strings.Contains(routes, want) {
			t.Fatalf("container routes lack %q:\n%s", want, routes)
		}
	}
	if strings.Contains(routes, "default") {
		t.Fatalf("isDefaultGateway=false but the container has a default route:\n%s", routes)
	}
	if len(res.DNS.Nameservers) != 1 || res.DNS.Nameservers[0] != "10.96.0.10" {
		t.Fatalf("dns not in result: %+v", res.DNS)
	}
	hostVeth := res.Interfaces[1].Name
	if hp := h.ns.exec(t, "cat", "/sys/class/net/"+hostVeth+"/brport/hairpin_mode"); strings.TrimSpace(hp) != "1" {
		t.Fatalf("hairpin_mode of %s is %q, want 1", hostVeth, hp)
	}
	if out, err := h.cnitool("check", ctr.path()); err != nil {
		t.Fatalf("cnitool check: %v\n%s", err, out)
	}
}

func TestOlderResultVersions(t *testing.T) {
	t.Parallel()
	h := newHost(t, "10.244.7.1/24", nil)
	for _, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0"} {
		ctr := newNetns(t, "wtc")
		call := pluginCall{command: "ADD", containerID: "ctr-" + v, netns: ctr.path(), ifname: "eth0",
			stdin: h.confJSON(t, v, nil), inNetns: &h.ns}
		out, perr := invoke(t, call)
		if perr != nil {
			t.Fatalf("ADD with cniVersion %s: %+v", v, perr)
		}
		if !strings.Contains(string(out), `"cniVersion": "`+v+`"`) || !strings.Contains(string(out), `"10.244.7.`) {
			t.Fatalf("ADD result for %s:\n%s", v, out)
		}
		// Results before 1.0.0 carry the IP version, which their parsers require.
		if hasVersion := strings.Contains(string(out), `"version": "4"`); hasVersion != (v != "1.0.0") {
			t.Fatalf("ADD result for %s (\"version\" field expected: %t):\n%s", v, v != "1.0.0", out)
		}
		mustPing(t, ctr, "10.244.7.1")
		call.command = "DEL"
		if _, perr := invoke(t, call); perr != nil {
			t.Fatalf("DEL with cniVersion %s: %+v", v, perr)
		}
	}
	if got := h.allocations(t); len(got) != 0 {
		t.Fatalf("allocations left: %v", got)
	}
}
