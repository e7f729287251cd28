//go:build !unit

package cni_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// GC of one network frees only what that network's store allocated: the
// running container of another network on the same bridge keeps its eth0.
func TestGCLeavesOtherNetworksAttachments(t *testing.T) {
	t.Parallel()
	gcd := newHost(t, "10.244.7.1/24", nil)
	gcd.add(t)
	// A second network in the same host namespace and on the same default
	// bridge, with its own data directory.
	other := &host{ns: gcd.ns, network: "wt" + randomSuffix(t), dir: t.TempDir(), subnetFile: gcd.subnetFile}
	other.dataDir = filepath.Join(other.dir, "ipam")
	other.confDir = filepath.Join(other.dir, "net.d")
	other.writeConflist(t, nil)
	otherCtr, otherRes := other.add(t)

	if out, err := gcd.cnitool("gc", "/var/run/netns/unused"); err != nil {
		t.Fatalf("cnitool gc %s: %v\n%s", gcd.network, err, out)
	}
	if got := gcd.allocations(t); len(got) != 0 {
		t.Fatalf("GC left %v in its own network", got)
	}
	if out, err := otherCtr.execErr("ip", "link", "show", "eth0"); err != nil {
		t.Fatalf("GC of network %s removed the eth0 of a container of network %s: %v\n%s", gcd.network, other.network, err, out)
	}
	if got := other.allocations(t); len(got) != 1 || got[0] != containerIP(t, otherRes) {
		t.Fatalf("other network's allocations after GC: %v", got)
	}
	mustPing(t, otherCtr, "10.244.7.1")
}

// Runtimes ask for a fixed address and MAC through CNI_ARGS (podman --ip,
// --mac-address: "IgnoreUnknown=1;K8S_POD_NAME=x;MAC=...;IP=..."), the
// "ips"/"mac" capabilities (runtimeConfig) or "args": {"cni": ...}.
func TestStaticIPAndMAC(t *testing.T) {
	t.Parallel()
	h := newHost(t, "10.244.7.1/24", nil)
	ctr := newNetns(t, "wtc")
	podman := pluginCall{command: "ADD", containerID: "ctr-podman", netns: ctr.path(), ifname: "eth0",
		args:  "IgnoreUnknown=1;K8S_POD_NAME=amazing_spence;MAC=02:11:22:33:44:55;IP=10.244.7.77",
		stdin: h.confJSON(t, "1.0.0", nil), inNetns: &h.ns}
	out, perr := invoke(t, podman)
	if perr != nil {
		t.Fatalf("ADD with IP= and MAC=: %+v", perr)
	}
	res := parseResult(t, out)
	if containerIP(t, res) != "10.244.7.77" || res.Interfaces[2].Mac != "02:11:22:33:44:55" {
		t.Fatalf("result %s: want 10.244.7.77 and 02:11:22:33:44:55", out)
	}
	if link := ctr.exec(t, "ip", "link", "show", "eth0"); !strings.Contains(link, "02:11:22:33:44:55") {
		t.Fatalf("container eth0 does not have the requested MAC:\n%s", link)
	}
	mustPing(t, ctr, "10.244.7.1")

	// The address is taken: another container asking for it gets an error
	// naming the holder, and loses nothing.
	ctr2 := newNetns(t, "wtc")
	taken := podman
	taken.containerID, taken.netns = "ctr-second", ctr2.path()
	if _, perr := invoke(t, taken); perr == nil || !strings.Contains(perr.Msg, "10.244.7.77 is held by container ctr-podman") {
		t.Fatalf("ADD of a taken static IP: %+v", perr)
	}
	if out, err := ctr2.execErr("ip", "link", "show", "eth0"); err == nil {
		t.Fatalf("failed ADD left eth0:\n%s", out)
	}

	// podman network reload: DEL, then ADD again with the old IP.
	podman.command = "DEL"
	if _, perr := invoke(t, podman); perr != nil {
		t.Fatalf("DEL: %+v", perr)
	}
	podman.command = "ADD"
	if out, perr := invoke(t, podman); perr != nil || containerIP(t, parseResult(t, out)) != "10.244.7.77" {
		t.Fatalf("re-ADD with the old IP: %+v %s", perr, out)
	}
	podman.command = "DEL"
	if _, perr := invoke(t, podman); perr != nil {
		t.Fatalf("DEL: %+v", perr)
	}

	// The capabilities and the args convention.
	for name, opts := range map[string]map[string]any{
		"runtimeConfig": {"runtimeConfig": map[string]any{"ips": []string{"10.244.7.88/24"}, "mac": "02:aa:bb:cc:dd:ee",
			"portMappings": []map[string]any{{"hostPort": 8080, "containerPort": 80}}}},
		"args": {"args": map[string]any{"cni": map[string]any{"ips": []string{"10.244.7.88"}, "mac": "02:aa:bb:cc:dd:ee"}}},
	} {
		call := pluginCall{command: "ADD", containerID: "ctr-" + name, netns: ctr.path(), ifname: "eth0",
			stdin: h.confJSON(t, "1.1.0", opts), inNetns: &h.ns}
		out, perr := invoke(t, call)
		if perr != nil {
			t.Fatalf("%s: ADD: %+v", name, perr)
		}
		if res := parseResult(t, out); containerIP(t, res) != "10.244.7.88" || res.Interfaces[2].Mac != "02:aa:bb:cc:dd:ee" {
			t.Fatalf("%s: result %s", name, out)
		}
		call.command = "DEL"
		if _, perr := invoke(t, call); perr != nil {
			t.Fatalf("%s: DEL: %+v", name, perr)
		}
	}
	if got := h.allocations(t); len(got) != 0 {
		t.Fatalf("allocations left: %v", got)
	}
}

// A container whose default route belongs to another network (weft not
// its default gateway, or added second) still reaches the overlay.
func TestOverlayRouteWhenDefaultRouteIsElsewhere(t *testing.T) {
	t.Parallel()
	h := newHost(t, "10.244.7.1/24", nil)
	ctr := newNetns(t, "wtc")
	ctr.exec(t, "ip", "link", "add", "other0", "type", "veth", "peer", "name", "other1")
	ctr.exec(t, "ip", "link", "set", "other1", "up")
	ctr.exec(t, "ip", "addr", "add", "198.51.100.2/24", "dev", "other0")
	ctr.exec(t, "ip", "link", "set", "other0", "up")
	ctr.exec(t, "ip", "route", "add", "default", "via", "198.51.100.1")
	out, err := h.cnitool("add", ctr.path())
	if err != nil {
		t.Fatalf("cnitool add: %v\n%s", err, out)
	}
	t.Cleanup(func() { h.cnitool("del", ctr.path()) })
	routes := ctr.exec(t, "ip", "-4", "route")
	if !strings.Contains(routes, "10.244.0.0/16 via 10.244.7.1 dev eth0") || !strings.Contains(routes, "default via 198.51.100.1 dev other0") {
		t.Fatalf("container routes:\n%s", routes)
	}
	res := parseResult(t, []byte(out))
	for _, r := range res.Routes {
		if r.Dst.String() == "0.0.0.0/0" {
			t.Fatalf("result reports a default route weft did not install: %+v", res.Routes)
		}
	}
	if out, err := h.cnitool("check", ctr.path()); err != nil {
		t.Fatalf("cnitool check: %v\n%s", err, out)
	}
}

// hairpinMode defaults to true, as in flannel's configuration, so that a
// container reaches itself through its own hostPort.
func TestHairpinByDefault(t *testing.T) {
	t.Parallel()
	h := newHost(t, "10.244.7.1/24", nil)
	_, res := h.add(t)
	hostVeth := res.Interfaces[1].Name
	if hp := h.ns.exec(t, "cat", "/sys/class/net/"+hostVeth+"/brport/hairpin_mode"); strings.TrimSpace(hp) != "1" {
		t.Fatalf("hairpin_mode of %s is %q, want 1 by default", hostVeth, hp)
	}
}

// The shipped example conflist works as it is with the portmap plugin of
// Debian 12's containernetworking-plugins (which speaks CNI up to 1.0.0),
// the way podman runs it.
func TestShippedConflistWithDebianPortmap(t *testing.T) {
	t.Parallel()
	const debianPlugins = "/usr/lib/cni"
	if _, err := os.Stat(filepath.Join(debianPlugins, "portmap")); err != nil {
		t.Fatalf("Debian's portmap plugin is needed (apt-get install containernetworking-plugins): %v", err)
	}
	data, err := os.ReadFile("../scripts/10-weft.conflist")
	if err != nil {
		t.Fatal(err)
	}
	var list map[string]any
	if err := json.Unmarshal(data, &list); err != nil {
		t.Fatalf("shipped conflist: %v", err)
	}
	h := newHost(t, "10.244.7.1/24", nil)
	weft := list["plugins"].([]any)[0].(map[string]any)
	weft["subnetFile"], weft["dataDir"] = h.subnetFile, h.dataDir
	weft["daemonSocket"] = startFakeWeftd(t).path // the shipped file uses weftd's default socket
	list["name"] = h.network
	// As shipped (1.0.0), and at the older versions runtimes may still use.
	for _, version := range []string{list["cniVersion"].(string), "0.3.1", "0.4.0"} {
		list["cniVersion"] = version
		data, err = json.Marshal(list)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(h.confDir, "10-weft.conflist"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		ctr := newNetns(t, "wtc")
		env := []string{"env", "CNI_PATH=" + testTools.cniPath + ":" + debianPlugins, "NETCONFPATH=" + h.confDir,
			`CAP_ARGS={"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}`, testTools.cnitool}
		out, err := h.ns.execErr(append(env, "add", h.network, ctr.path())...)
		if err != nil {
			t.Fatalf("cnitool add with the shipped conflist at %s: %v\n%s", version, err, out)
		}
		var res struct {
			CNIVersion string `json:"cniVersion"`
			IPs        []struct {
				Address string `json:"address"`
			} `json:"ips"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || res.CNIVersion != version || len(res.IPs) != 1 {
			t.Fatalf("%s: result %s (%v)", version, out, err)
		}
		ip, _, _ := strings.Cut(res.IPs[0].Address, "/")
		if rules := h.ns.exec(t, "iptables", "-t", "nat", "-S"); !strings.Contains(rules, "--to-destination "+ip+":80") {
			t.Fatalf("%s: portmap installed no DNAT to %s:80:\n%s", version, ip, rules)
		}
		if out, err := h.ns.execErr(append(env, "del", h.network, ctr.path())...); err != nil {
			t.Fatalf("%s: cnitool del: %v\n%s", version, err, out)
		}
		if rules := h.ns.exec(t, "iptables", "-t", "nat", "-S"); strings.Contains(rules, ip+":80") {
			t.Fatalf("%s: DNAT left after DEL:\n%s", version, rules)
		}
	}
}

// podman sends its container name as K8S_POD_NAME, without a namespace:
// a name that is no Kubernetes pod name ("hungry_ride") is left out of the
// identity instead of making weftd refuse the container; a valid one is kept.
func TestPodmanContainerNamesAreNoPodNames(t *testing.T) {
	t.Parallel()
	weftd := startFakeWeftd(t)
	h := newHost(t, "10.244.7.1/24", map[string]any{"daemonSocket": weftd.path})
	for name, wantPod := range map[string]string{"hungry_ride": "", "My.App": "", "web-1": "web-1"} {
		ctr := newNetns(t, "wtc")
		call := pluginCall{command: "ADD", containerID: "ctr-" + name, netns: ctr.path(), ifname: "eth0",
			args: "IgnoreUnknown=1;K8S_POD_NAME=" + name, stdin: h.confJSON(t, "1.0.0", map[string]any{"daemonSocket": weftd.path}), inNetns: &h.ns}
		if _, perr := invoke(t, call); perr != nil {
			t.Fatalf("ADD with K8S_POD_NAME=%s: %+v", name, perr)
		}
		if reqs := weftd.take(); len(reqs) != 1 || reqs[0].Pod != wantPod || reqs[0].Namespace != "default" {
			t.Fatalf("K8S_POD_NAME=%s: weftd got %+v, want pod %q in namespace default", name, reqs, wantPod)
		}
		call.command = "DEL"
		if _, perr := invoke(t, call); perr != nil {
			t.Fatalf("DEL: %+v", perr)
		}
		weftd.take()
	}
}
