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
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
)

// debianCNIPlugins is where Debian's containernetworking-plugins installs
// bridge, host-local and portmap.
const debianCNIPlugins = "/usr/lib/cni"

// flannelEnv is flannel's subnet.env as flannel's CNI plugin reads it.
type flannelEnv struct {
	network, subnet netip.Prefix
	mtu             int
	ipMasq          bool
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
	if len(seen) != 4 {
		t.Fatalf("%s holds %v, want the four FLANNEL_ keys:\n%s", path, seen, data)
	}
	return e
}

// flannelDelegate is the network config flannel's CNI plugin (type
// "flannel", with kube-flannel's {"hairpinMode": true, "isDefaultGateway":
// true} delegate) hands to the bridge plugin: the subnet from FLANNEL_SUBNET
// as a host-local range, a route for FLANNEL_NETWORK, FLANNEL_MTU, and
// ipMasq only when the daemon does not masquerade (FLANNEL_IPMASQ=false).
// The ipam dataDir is the one key added here: host-local's default is
// shared by the whole machine.
func flannelDelegate(e flannelEnv, dataDir string) map[string]any {
	return map[string]any{
		"cniVersion":       "0.3.1",
		"name":             "cbr0",
		"type":             "bridge",
		"hairpinMode":      true,
		"isDefaultGateway": true,
		"isGateway":        true,
		"ipMasq":           !e.ipMasq,
		"mtu":              e.mtu,
		"ipam": map[string]any{
			"type":    "host-local",
			"dataDir": dataDir,
			"ranges":  [][]map[string]string{{{"subnet": e.subnet.Masked().String()}}},
			"routes":  []map[string]string{{"dst": e.network.String()}},
		},
	}
}

// flannelContainer attaches a new namespace on node n with cnitool, Debian's
// plugins and the delegate config, and detaches it at cleanup.
func flannelContainer(t *testing.T, n *cluster.Node, conf map[string]any) (*testbed.NS, netip.Addr) {
	t.Helper()
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
		return n.Host.NS.Run(ctx, "env", "CNI_PATH="+debianCNIPlugins, "NETCONFPATH="+dir, tool, verb, "cbr0", ctr.Path())
	}
	out, err := cnitool("add")
	if err != nil {
		ctr.Delete()
		t.Fatalf("node %d: bridge+host-local with flannel's delegate config: %v", n.Index+1, err)
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
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.IPs) != 1 {
		t.Fatalf("cnitool add result %s: %v", out, err)
	}
	p, err := netip.ParsePrefix(res.IPs[0].Address)
	if err != nil {
		t.Fatal(err)
	}
	return ctr, p.Addr()
}

// countICMPFrom adds an INPUT rule counting ICMP from src in ns and returns
// a function reading the count.
func countICMPFrom(t *testing.T, ns *testbed.NS, src netip.Addr) func() int {
	t.Helper()
	ctx := ctxFor(t, 30*time.Second)
	runIn(t, ctx, ns, "iptables", "-I", "INPUT", "-s", src.String(), "-p", "icmp")
	return func() int {
		out := runIn(t, ctx, ns, "iptables", "-L", "INPUT", "-v", "-n", "-x")
		for _, line := range strings.Split(out, "\n") {
			// pkts bytes [target] prot opt in out source destination; no target here.
			f := strings.Fields(line)
			if len(f) == 8 && f[6] == src.String() {
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
		ctr, ip := flannelContainer(t, n, flannelDelegate(fe, filepath.Join(n.Dir, "host-local")))
		if !fe.subnet.Masked().Contains(ip) {
			t.Fatalf("node %d: host-local gave %s outside FLANNEL_SUBNET %s", n.Index+1, ip, fe.subnet)
		}
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
