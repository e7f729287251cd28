//go:build !unit

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
	"github.com/weftnet/weft/testbed/flannel"
)

// debianCNIPlugins is where Debian's containernetworking-plugins installs
// bridge, host-local and portmap.
const debianCNIPlugins = "/usr/lib/cni"

// flannelEnv is flannel's subnet.env as flannel's CNI plugin reads it.
type flannelEnv struct {
	network, subnet netip.Prefix
	// network6, subnet6: FLANNEL_IPV6_NETWORK and FLANNEL_IPV6_SUBNET of
	// a dual-stack network (invalid without).
	network6, subnet6 netip.Prefix
	mtu               int
	ipMasq            bool
}

func readFlannelEnv(t *testing.T, path string) flannelEnv {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("flannel subnet file: %v", err)
	}
	var e flannelEnv
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			t.Fatalf("%s: line %q is not KEY=VALUE", path, sc.Text())
		}
		seen[k] = true
		switch k {
		case "FLANNEL_NETWORK":
			e.network, err = netip.ParsePrefix(v)
		case "FLANNEL_SUBNET":
			e.subnet, err = netip.ParsePrefix(v)
		case "FLANNEL_IPV6_NETWORK":
			e.network6, err = netip.ParsePrefix(v)
		case "FLANNEL_IPV6_SUBNET":
			e.subnet6, err = netip.ParsePrefix(v)
		case "FLANNEL_MTU":
			e.mtu, err = strconv.Atoi(v)
		case "FLANNEL_IPMASQ":
			e.ipMasq, err = strconv.ParseBool(v)
		default:
			t.Fatalf("%s: unexpected key %s", path, k)
		}
		if err != nil {
			t.Fatalf("%s: %s: %v", path, k, err)
		}
	}
	if v6 := seen["FLANNEL_IPV6_NETWORK"] || seen["FLANNEL_IPV6_SUBNET"]; len(seen) != 4 && !(v6 && len(seen) == 6) {
		t.Fatalf("%s holds %v, want the four FLANNEL_ keys (and both IPv6 ones, or neither):\n%s", path, seen, data)
	}
	return e
}

// flannelCNIConf is a node's CNI config for flannel's own CNI plugin, as
// kube-flannel installs it (type "flannel", the delegate {"hairpinMode":
// true, "isDefaultGateway": true}), reading subnetFile. Two keys are added
// because every namespace here shares one machine: the plugin's dataDir
// (default /var/lib/cni/flannel) and host-local's (flannel's plugin keeps
// the input ipam's keys and adds the ranges and routes).
func flannelCNIConf(n *cluster.Node, subnetFile string) map[string]any {
	return map[string]any{
		"cniVersion": "0.3.1",
		"name":       "cbr0",
		"type":       "flannel",
		"subnetFile": subnetFile,
		"dataDir":    filepath.Join(n.Dir, "flannel-cni-data"),
		"delegate":   map[string]any{"hairpinMode": true, "isDefaultGateway": true},
		"ipam":       map[string]any{"type": "host-local", "dataDir": filepath.Join(n.Dir, "host-local")},
	}
}

// flannelCNIPath is CNI_PATH for flannel's plugin: its own directory, then
// Debian's bridge and host-local.
func flannelCNIPath(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	bin, err := flannel.CNIPlugin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(bin) + ":" + debianCNIPlugins
}

// flannelContainer attaches a new namespace on node n with cnitool and
// flannel's CNI plugin (conf from flannelCNIConf), which reads the subnet
// file and delegates to Debian's bridge and host-local, and detaches it at
// cleanup. It checks that flannel's plugin did the work: the delegate
// config it kept for DEL has the subnet file's subnet, route and MTU, and
// so has the container's eth0.
func flannelContainer(t *testing.T, n *cluster.Node, conf map[string]any) (*testbed.NS, netip.Addr) {
	t.Helper()
	ctr, ip, _ := flannelContainerDual(t, n, conf)
	return ctr, ip
}

// flannelContainerDual is flannelContainer that also returns the
// container's IPv6 address when the subnet file has an IPv6 subnet (on an
// IPv6-only network, whose subnet file has no IPv4 keys, only that one).
func flannelContainerDual(t *testing.T, n *cluster.Node, conf map[string]any) (*testbed.NS, netip.Addr, netip.Addr) {
	t.Helper()
	fe := readFlannelEnv(t, conf["subnetFile"].(string))
	cniPath := flannelCNIPath(t)
	dir := filepath.Join(n.Dir, "flannel-cni")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "10-flannel.conf"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	ctr, err := testbed.NewNS("wfc")
	if err != nil {
		t.Fatal(err)
	}
	tool, err := cluster.Cnitool()
	if err != nil {
		t.Fatal(err)
	}
	cnitool := func(verb string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return n.Host.NS.Run(ctx, "env", "CNI_PATH="+cniPath, "NETCONFPATH="+dir, tool, verb, "cbr0", ctr.Path())
	}
	kept := keptDelegates(t, conf["dataDir"].(string))
	out, err := cnitool("add")
	if err != nil {
		ctr.Delete()
		t.Fatalf("node %d: flannel's CNI plugin (bridge, host-local): %v\n%s", n.Index+1, err, out)
	}
	t.Cleanup(func() {
		if out, err := cnitool("del"); err != nil {
			t.Errorf("cnitool del: %v\n%s", err, out)
		}
		ctr.Delete()
	})
	var res struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	dual, v4 := fe.subnet6.IsValid(), fe.subnet.IsValid()
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.IPs) != map[bool]int{false: 1, true: 2}[dual && v4] {
		t.Fatalf("cnitool add result %s: %v", out, err)
	}
	var p, p6 netip.Prefix
	for _, a := range res.IPs {
		q, err := netip.ParsePrefix(a.Address)
		if err != nil {
			t.Fatal(err)
		}
		if q.Addr().Is4() {
			p = q
		} else {
			p6 = q
		}
	}
	if v4 != p.IsValid() || dual != p6.IsValid() || dual && !fe.subnet6.Masked().Contains(p6.Addr()) {
		t.Fatalf("node %d: flannel's plugin gave %v, want an IPv4 address (%v) and an IPv6 one in %v", n.Index+1, res.IPs, fe.subnet, fe.subnet6)
	}
	// What flannel's plugin handed the bridge plugin (kept for DEL).
	var added []string
	for name := range keptDelegates(t, conf["dataDir"].(string)) {
		if !kept[name] {
			added = append(added, name)
		}
	}
	if len(added) != 1 {
		t.Fatalf("node %d: flannel's plugin kept %d new delegate configs in its dataDir, want 1", n.Index+1, len(added))
	}
	raw, err := os.ReadFile(filepath.Join(conf["dataDir"].(string), added[0]))
	if err != nil {
		t.Fatal(err)
	}
	var del struct {
		Type   string
		MTU    int
		IPMasq bool
		IPAM   struct {
			Ranges [][]struct{ Subnet string }
			Routes []struct{ Dst string }
		}
	}
	uerr := json.Unmarshal(raw, &del)
	var wantRanges, wantRoutes []string
	if v4 {
		wantRanges, wantRoutes = []string{fe.subnet.Masked().String()}, []string{fe.network.String()}
	}
	if dual {
		wantRanges, wantRoutes = append(wantRanges, fe.subnet6.Masked().String()), append(wantRoutes, fe.network6.String())
	}
	var ranges, routes []string
	for _, r := range del.IPAM.Ranges {
		for _, x := range r {
			ranges = append(ranges, x.Subnet)
		}
	}
	for _, r := range del.IPAM.Routes {
		routes = append(routes, r.Dst)
	}
	if uerr != nil || del.Type != "bridge" || del.MTU != fe.mtu || del.IPMasq == fe.ipMasq ||
		!slices.Equal(ranges, wantRanges) || !slices.Equal(routes, wantRoutes) {
		t.Fatalf("node %d: flannel's plugin delegated %s (%v); want bridge, mtu %d, ipMasq %v, ranges %v, routes %v",
			n.Index+1, raw, uerr, fe.mtu, !fe.ipMasq, wantRanges, wantRoutes)
	}
	if v4 && !fe.subnet.Masked().Contains(p.Addr()) {
		t.Fatalf("node %d: flannel's plugin gave %s outside FLANNEL_SUBNET %s", n.Index+1, p.Addr(), fe.subnet)
	}
	if got := linkMTU(t, ctr, "eth0"); got != fe.mtu {
		t.Fatalf("node %d: container eth0 MTU %d, FLANNEL_MTU %d", n.Index+1, got, fe.mtu)
	}
	return ctr, p.Addr(), p6.Addr()
}

// keptDelegates are the names of the delegate configs flannel's plugin
// keeps in dataDir (one per attached container).
func keptDelegates(t *testing.T, dataDir string) map[string]bool {
	t.Helper()
	entries, err := os.ReadDir(dataDir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, e := range entries {
		names[e.Name()] = true
	}
	return names
}

// countICMPFrom adds an INPUT rule counting ICMP from src in ns and returns
// a function reading the count.
func countICMPFrom(t *testing.T, ns *testbed.NS, src netip.Addr) func() int {
	t.Helper()
	ctx := ctxFor(t, 30*time.Second)
	tool, proto := "iptables", "icmp"
	if src.Is6() {
		tool, proto = "ip6tables", "ipv6-icmp"
	}
	runIn(t, ctx, ns, tool, "-I", "INPUT", "-s", src.String(), "-p", proto)
	return func() int {
		out := runIn(t, ctx, ns, tool, "-L", "INPUT", "-v", "-n", "-x")
		for _, line := range strings.Split(out, "\n") {
			// pkts bytes [target] prot opt in out source destination; no target here.
			f := strings.Fields(line)
			if len(f) >= 7 && slices.Contains(f, src.String()) {
				n, err := strconv.Atoi(f[0])
				if err != nil {
					t.Fatalf("counter in %q: %v", line, err)
				}
				return n
			}
		}
		t.Fatalf("no counting rule for %s in:\n%s", src, out)
		return 0
	}
}

// flannel users keep their CNI setup: weftd --flannel-subnet-file writes
// flannel's subnet.env, and Debian's bridge + host-local plugins, fed the
// delegate config flannel's plugin builds from it, connect containers on
// two weft hosts. With --ip-masq (FLANNEL_IPMASQ=true) weftd masquerades
// traffic leaving the overlay, overlay traffic keeps its source, and the
// rules are gone when weftd stops.
func TestFlannelCNISetupOnWeft(t *testing.T) {
	c := newCluster(t, 2, cluster.Options{FlannelSubnetFile: true, ExtraArgs: []string{"--ip-masq"}})
	ctx := ctxFor(t, 2*time.Minute)
	var ctrs []*testbed.NS
	var ips []netip.Addr
	for _, n := range c.Nodes {
		fe := readFlannelEnv(t, n.FlannelSubnetFile)
		we, err := n.Subnet()
		if err != nil {
			t.Fatal(err)
		}
		if fe.network != we.Network || fe.subnet != we.Subnet || fe.mtu != we.MTU || !fe.ipMasq || !we.IPMasq {
			t.Fatalf("node %d: flannel file %+v disagrees with weft's %+v (or IPMASQ is not true)", n.Index+1, fe, we)
		}
		ctr, ip := flannelContainer(t, n, flannelCNIConf(n, n.FlannelSubnetFile))
		ctrs, ips = append(ctrs, ctr), append(ips, ip)
	}

	fromCtr0 := countICMPFrom(t, ctrs[1], ips[0])
	runIn(t, ctx, ctrs[0], "ping", "-c", "3", "-i", "0.2", "-W", "2", ips[1].String())
	runIn(t, ctx, ctrs[1], "ping", "-c", "3", "-i", "0.2", "-W", "2", ips[0].String())
	if n := fromCtr0(); n < 3 {
		t.Fatalf("container 2 saw %d pings from container 1's own address %s: overlay traffic was masqueraded", n, ips[0])
	}

	// Leaving the overlay (to host 2's underlay address): masqueraded by
	// weftd on host 1 to host 1's address.
	host1, host2 := c.Nodes[0].Host, c.Nodes[1].Host
	fromHost1, fromCtrDirect := countICMPFrom(t, host2.NS, host1.IP), countICMPFrom(t, host2.NS, ips[0])
	runIn(t, ctx, ctrs[0], "ping", "-c", "3", "-i", "0.2", "-W", "2", host2.IP.String())
	if a, b := fromHost1(), fromCtrDirect(); a < 3 || b != 0 {
		t.Fatalf("host 2 saw %d pings from %s and %d from the container's %s: want them masqueraded", a, host1.IP, b, ips[0])
	}

	if _, err := host1.NS.Run(ctx, "nft", "list", "table", "ip", "weft-masq"); err != nil {
		t.Fatalf("weftd --ip-masq: no table ip weft-masq on host 1: %v", err)
	}
	if err := c.Nodes[0].Stop(syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if out, err := host1.NS.Run(ctx, "nft", "list", "table", "ip", "weft-masq"); err == nil {
		t.Fatalf("masquerading table left after weftd stopped:\n%s", out)
	}
}
