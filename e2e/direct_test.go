//go:build !unit

package e2e

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
)

// routedBed: hosts 1 and 2 share 192.0.2.0/24 with a router, host 3 sits
// behind it on 198.51.100.0/24.
func routedCluster(t *testing.T, backend string) *cluster.Cluster {
	t.Helper()
	bed := testbed.ForTestWith(t, "wd", 3, testbed.Options{Remote: 1})
	return newStoppedClusterOn(t, bed, cluster.Options{
		NetworkConfig: `{"Network":"10.244.0.0/16","SubnetLen":24,"Backend":` + backend + `}`,
	})
}

// peerModes maps each peer's subnet to its mode in node n's /status.
func peerModes(ctx context.Context, n *cluster.Node) (map[string]string, error) {
	st, err := n.Status(ctx)
	if err != nil {
		return nil, err
	}
	modes := map[string]string{}
	for _, p := range st.Peers {
		modes[p.Subnet] = p.Mode + " " + p.Endpoint
	}
	return modes, nil
}

// waitModes waits until node n reaches each subnet as want says ("mode
// endpoint").
func waitModes(t *testing.T, n *cluster.Node, want map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := testbed.WaitFor(ctx, 50*time.Millisecond, func() error {
		got, err := peerModes(ctx, n)
		if err != nil {
			return err
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("node %d peers %v, want %v", n.Index+1, got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// weftRoutes are the routes with weft's protocol in n's main table.
func weftRoutes(t *testing.T, n *cluster.Node) []string {
	t.Helper()
	out := runIn(t, ctxFor(t, 10*time.Second), n.Host.NS, "ip", "-4", "route", "show", "proto", "119")
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// waitRoutes waits until n's weft routes are exactly want.
func waitRoutes(t *testing.T, n *cluster.Node, want []string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	err := testbed.WaitFor(ctx, 20*time.Millisecond, func() error {
		out, err := n.Host.NS.Run(ctx, "ip", "-4", "route", "show", "proto", "119")
		if err != nil {
			return err
		}
		got := normalRoutes(strings.Split(out, "\n"))
		if exp := normalRoutes(want); got != exp {
			return fmt.Errorf("node %d weft routes %q, want %q", n.Index+1, got, exp)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return time.Since(start)
}

// normalRoutes renders route lines sorted, with single spaces.
func normalRoutes(lines []string) string {
	var out []string
	for _, l := range lines {
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return strings.Join(out, "; ")
}

// directRoute is the route on node from to subnet, held by node to: its
// preferred source is from's TUN address.
func directRoute(t *testing.T, from, to *cluster.Node, subnet netip.Prefix) string {
	t.Helper()
	return fmt.Sprintf("%s via %s dev eth0 src %s", subnet, to.Host.IP, tunAddr(t, from))
}

// capture runs tcpdump on n's underlay with filter; stop waits (up to ten
// seconds) until at least atLeast packets are in the capture file, ends
// tcpdump and returns how many packets it captured.
func capture(t *testing.T, c *cluster.Cluster, n *cluster.Node, filter string) (stop func(atLeast int) int) {
	t.Helper()
	logPath := filepath.Join(n.Dir, "tcpdump.log")
	pcap := filepath.Join(n.Dir, "underlay.pcap")
	p, err := c.Bed.Start(n.Host, logPath, "tcpdump", "-n", "-i", "eth0", "--immediate-mode", "-U", "-w", pcap, filter)
	if err != nil {
		t.Fatal(err)
	}
	err = testbed.WaitFor(ctxFor(t, 20*time.Second), 50*time.Millisecond, func() error {
		data, _ := os.ReadFile(logPath)
		if !strings.Contains(string(data), "listening on eth0") {
			return fmt.Errorf("tcpdump not listening yet: %q", data)
		}
		return nil
	})
	if err != nil {
		p.Kill()
		t.Fatal(err)
	}
	return func(atLeast int) int {
		t.Helper()
		testbed.WaitFor(ctxFor(t, 10*time.Second), 100*time.Millisecond, func() error {
			out, _ := exec.Command("tcpdump", "-n", "-r", pcap).Output()
			if got := strings.Count(string(out), "\n"); got < atLeast {
				return fmt.Errorf("%d packets captured so far", got)
			}
			return nil
		})
		if err := p.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		p.Wait(10 * time.Second)
		data, _ := os.ReadFile(logPath)
		m := regexp.MustCompile(`(\d+) packets? captured`).FindSubmatch(data)
		if m == nil {
			t.Fatalf("tcpdump output without a packet count:\n%s", data)
		}
		t.Logf("tcpdump on node %d: %s", n.Index+1, strings.Join(strings.Fields(string(data)), " "))
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}
}

// udpPackets is tx+rx packets of n's UDP data path.
func udpPackets(t *testing.T, n *cluster.Node) (tx, rx float64) {
	t.Helper()
	fams := metrics(t, n)
	return counter(fams, "weft_packets_total", "tx"), counter(fams, "weft_packets_total", "rx")
}

// DirectRouting on a bed where hosts 1 and 2 share an L2 and host 3 is
// behind a router: 1<->2 use kernel routes (no UDP to the weft port on the
// wire, weft's UDP counters still), 1<->3 and 2<->3 use UDP; containers on
// all hosts reach each other and 200 MB cross the direct pair intact both
// ways. Stale weft routes are cleaned at start, hand-made routes never
// touched, a leaving peer's route goes at once.
func TestDirectRouting(t *testing.T) {
	c := routedCluster(t, `{"Type":"udp","Port":8285,"DirectRouting":true}`)
	ctx := ctxFor(t, 6*time.Minute)
	n1, n2, n3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]

	// Before weftd starts on host 2: a route someone added by hand, and a
	// weft route an earlier run left behind.
	hand := "10.99.0.0/16 via 192.0.2.254 dev eth0"
	runIn(t, ctx, n2.Host.NS, "ip", "route", "add", "10.99.0.0/16", "via", "192.0.2.254", "dev", "eth0")
	runIn(t, ctx, n2.Host.NS, "ip", "route", "add", "10.244.250.0/24", "via", "192.0.2.9", "dev", "eth0", "proto", "119")

	startNodes(t, c.Nodes)
	s1, s2, s3 := nodeSubnet(t, n1), nodeSubnet(t, n2), nodeSubnet(t, n3)
	waitModes(t, n1, map[string]string{s2.String(): "direct 192.0.2.2", s3.String(): "udp 198.51.100.3:8285"})
	waitModes(t, n2, map[string]string{s1.String(): "direct 192.0.2.1", s3.String(): "udp 198.51.100.3:8285"})
	waitModes(t, n3, map[string]string{s1.String(): "udp 192.0.2.1:8285", s2.String(): "udp 192.0.2.2:8285"})
	waitRoutes(t, n1, []string{directRoute(t, n1, n2, s2)}, 5*time.Second)
	waitRoutes(t, n2, []string{directRoute(t, n2, n1, s1)}, 5*time.Second)
	waitRoutes(t, n3, nil, 5*time.Second)
	if table := strings.Join(routes(t, n2.Host.NS), "\n"); !strings.Contains(table, hand) {
		t.Errorf("hand-made route %q gone:\n%s", hand, table)
	}
	for _, mode := range []struct {
		name string
		want float64
	}{{"direct", 1}, {"udp", 1}, {"unreachable", 0}} {
		if v := labelled(metrics(t, n1), "weft_peers", "mode", mode.name); v != mode.want {
			t.Errorf("node 1 weft_peers{mode=%q} = %v, want %v", mode.name, v, mode.want)
		}
	}
	status := runIn(t, ctx, n1.Host.NS, filepath.Join(binDir, "weftctl"), "status", "--daemon-url", fmt.Sprintf("http://127.0.0.1:%d", cluster.HealthzPort))
	for _, want := range []string{s2.String() + ` +direct +192\.0\.2\.2\n`, s3.String() + ` +udp +198\.51\.100\.3:8285\n`} {
		if !regexp.MustCompile(want).MatchString(status) {
			t.Errorf("weftctl status lacks %q:\n%s", want, status)
		}
	}

	// A weft route deleted by hand is put back by the periodic check.
	runIn(t, ctx, n1.Host.NS, "ip", "route", "del", s2.String(), "proto", "119")
	took := waitRoutes(t, n1, []string{directRoute(t, n1, n2, s2)}, 15*time.Second)
	t.Logf("weft route deleted by hand: back after %v", took.Round(time.Millisecond))
	// The underlay goes down and up: the kernel flushes the routes through
	// it; weft puts its own back (the host's default route is the host's
	// business: the test restores it, as a network manager would).
	runIn(t, ctx, n1.Host.NS, "ip", "link", "set", "eth0", "down")
	waitRoutes(t, n1, nil, 5*time.Second)
	runIn(t, ctx, n1.Host.NS, "ip", "link", "set", "eth0", "up")
	runIn(t, ctx, n1.Host.NS, "ip", "route", "replace", "default", "via", n1.Host.Gateway.String(), "dev", "eth0")
	took = waitRoutes(t, n1, []string{directRoute(t, n1, n2, s2)}, 15*time.Second)
	t.Logf("underlay down and up: route back after %v", took.Round(time.Millisecond))
	runIn(t, ctx, n1.Host.NS, "ping", "-c", "2", "-i", "0.2", "-W", "2", tunAddr(t, n2).String())

	var ctrs []*cluster.Container
	for _, n := range c.Nodes {
		ctrs = append(ctrs, addContainer(t, n, "wdc"))
	}
	for _, src := range ctrs {
		for _, dst := range ctrs {
			if src != dst {
				if out, err := src.Ping(ctx, dst.IP, 2); err != nil {
					t.Errorf("ping %s (node %d) -> %s (node %d): %v\n%s", src.IP, src.Node.Index+1, dst.IP, dst.Node.Index+1, err, out)
				}
			}
		}
	}

	// The direct pair: nothing goes through weft's UDP data path.
	tx1, rx1 := udpPackets(t, n1)
	tx2, rx2 := udpPackets(t, n2)
	stop := capture(t, c, n2, "udp port 8285 and host 192.0.2.1 and host 192.0.2.2")
	runIn(t, ctx, ctrs[0].NS, "ping", "-c", "5", "-i", "0.2", "-W", "2", ctrs[1].IP.String())
	transfer(t, ctrs[0].NS, ctrs[1].NS, ctrs[1].IP.String(), 200<<20)
	transfer(t, ctrs[1].NS, ctrs[0].NS, ctrs[0].IP.String(), 200<<20)
	if tx, rx := udpPackets(t, n1); tx != tx1 || rx != rx1 {
		t.Errorf("node 1 UDP data path moved during direct traffic: tx %v -> %v, rx %v -> %v", tx1, tx, rx1, rx)
	}
	if tx, rx := udpPackets(t, n2); tx != tx2 || rx != rx2 {
		t.Errorf("node 2 UDP data path moved during direct traffic: tx %v -> %v, rx %v -> %v", tx2, tx, rx2, rx)
	}
	// The capture sees UDP to the weft port when there is some: three
	// datagrams from host 1 to host 2's port 8285, and nothing else.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out := runIn(t, ctx, n1.Host.NS, "env", roleEnv+"=udpblast", self, "192.0.2.2:8285", "3", "00")
	if got := stop(3); got != 3 {
		t.Errorf("underlay capture on host 2: %d UDP packets between hosts 1 and 2 on port 8285, want only the 3 probes (%s)", got, strings.TrimSpace(out))
	}

	checkWildcardUDPService(t, n1, n2, ctrs[0])
	checkUnderlaySources(t, n1, ctrs, s2, s3)
	checkL2Source(t, c, ctrs, s1, s2)

	// Through the router: weft's UDP path, counters move.
	tx1, _ = udpPackets(t, n1)
	transfer(t, ctrs[0].NS, ctrs[2].NS, ctrs[2].IP.String(), 20<<20)
	transfer(t, ctrs[2].NS, ctrs[1].NS, ctrs[1].IP.String(), 20<<20)
	if tx, _ := udpPackets(t, n1); tx < tx1+1000 {
		t.Errorf("node 1 UDP tx packets %v -> %v after 20 MB to host 3, want them to move", tx1, tx)
	}

	// A lease of a host on the L2 appears in etcd: its route is there
	// within a second, and gone within a second of the lease's deletion.
	cli := etcdClientIn(t, n1.Host.NS, c.EtcdEndpoint())
	phantom := netip.MustParsePrefix("10.244.251.0/24")
	if _, err := cli.Put(ctx, leaseKey(phantom), leaseValue("192.0.2.77")); err != nil {
		t.Fatal(err)
	}
	took = waitRoutes(t, n1, []string{directRoute(t, n1, n2, s2), phantom.String() + " via 192.0.2.77 dev eth0 src " + tunAddr(t, n1).String()}, 5*time.Second)
	t.Logf("lease put: node 1 added the direct route after %v", took.Round(time.Millisecond))
	if took > time.Second {
		t.Errorf("route addition took %v, want within a second", took)
	}
	if _, err := cli.Delete(ctx, leaseKey(phantom)); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, n1, []string{directRoute(t, n1, n2, s2)}, time.Second)

	// Host 2 leaves: its route goes from host 1 within a second of the
	// lease's deletion; back when it returns.
	if err := n2.Stop(syscall.SIGKILL, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Delete(ctx, leaseKey(s2)); err != nil {
		t.Fatal(err)
	}
	took = waitRoutes(t, n1, nil, 5*time.Second)
	t.Logf("lease deleted: node 1 removed the direct route after %v", took.Round(time.Millisecond))
	if took > time.Second {
		t.Errorf("route removal took %v, want within a second", took)
	}
	startNodes(t, []*cluster.Node{n2})
	s2 = nodeSubnet(t, n2)
	waitRoutes(t, n1, []string{directRoute(t, n1, n2, s2)}, 5*time.Second)
	waitRoutes(t, n2, []string{directRoute(t, n2, n1, s1)}, 5*time.Second)
	runIn(t, ctx, n1.Host.NS, "ping", "-c", "2", "-i", "0.2", "-W", "2", tunAddr(t, n2).String())

	// A clean stop removes weft's routes and only those.
	if err := n2.Stop(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if left := weftRoutes(t, n2); len(left) != 0 {
		t.Errorf("weft routes left after weftd stopped: %v", left)
	}
	if table := strings.Join(routes(t, n2.Host.NS), "\n"); !strings.Contains(table, hand) {
		t.Errorf("hand-made route %q gone after stop:\n%s", hand, table)
	}
}

// host-gw on the same bed: hosts 1 and 2 reach each other through plain
// routes; host 3, off their L2, is reported and unreachable.
func TestHostGW(t *testing.T) {
	c := routedCluster(t, `{"Type":"host-gw"}`)
	ctx := ctxFor(t, 3*time.Minute)
	n1, n2, n3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	startNodes(t, c.Nodes)
	s1, s2, s3 := nodeSubnet(t, n1), nodeSubnet(t, n2), nodeSubnet(t, n3)
	waitModes(t, n1, map[string]string{s2.String(): "direct 192.0.2.2", s3.String(): "unreachable "})
	waitModes(t, n2, map[string]string{s1.String(): "direct 192.0.2.1", s3.String(): "unreachable "})
	waitModes(t, n3, map[string]string{s1.String(): "unreachable ", s2.String(): "unreachable "})
	waitRoutes(t, n1, []string{directRoute(t, n1, n2, s2)}, 5*time.Second)
	waitRoutes(t, n3, nil, 5*time.Second)
	if v := labelled(metrics(t, n1), "weft_peers", "mode", "unreachable"); v != 1 {
		t.Errorf("node 1 weft_peers{mode=\"unreachable\"} = %v, want 1", v)
	}
	if log := n1.Log(200); !strings.Contains(log, "not on this node's L2 network") || !strings.Contains(log, s3.String()) {
		t.Errorf("node 1 did not report the off-L2 peer %s:\n%s", s3, log)
	}
	for _, n := range c.Nodes {
		env, err := n.Subnet()
		if err != nil || env.MTU != 1500 {
			t.Errorf("node %d subnet file MTU %d (%v), want the underlay's 1500 (nothing encapsulated)", n.Index+1, env.MTU, err)
		}
	}

	ctrs := []*cluster.Container{addContainer(t, n1, "wgc"), addContainer(t, n2, "wgc"), addContainer(t, n3, "wgc")}
	for _, pair := range [][2]int{{0, 1}, {1, 0}} {
		src, dst := ctrs[pair[0]], ctrs[pair[1]]
		if out, err := src.Ping(ctx, dst.IP, 2); err != nil {
			t.Errorf("ping node %d -> node %d: %v\n%s", pair[0]+1, pair[1]+1, err, out)
		}
	}
	transfer(t, ctrs[0].NS, ctrs[1].NS, ctrs[1].IP.String(), 200<<20)
	transfer(t, ctrs[1].NS, ctrs[0].NS, ctrs[0].IP.String(), 200<<20)
	for _, pair := range [][2]int{{0, 2}, {2, 1}} {
		src, dst := ctrs[pair[0]], ctrs[pair[1]]
		out, err := src.NS.Run(ctx, "ping", "-c", "1", "-W", "2", dst.IP.String())
		if err == nil {
			t.Errorf("ping node %d -> node %d (off-L2, host-gw) succeeded:\n%s", pair[0]+1, pair[1]+1, out)
		} else if !strings.Contains(out, "Destination Net Unreachable") {
			t.Errorf("ping node %d -> node %d: want \"Destination Net Unreachable\", got:\n%s", pair[0]+1, pair[1]+1, out)
		}
	}
}

// checkWildcardUDPService: a UDP service on host 2 listening on the
// wildcard address (a node-local DNS cache, say) is asked through host 2's
// TUN address from a direct peer, by a container and by host 1 itself
// bound to its own TUN address (as iperf3 -B does). The answers leave
// from the address the kernel picks for the route back; unless the direct
// route carries the TUN address as its source, that is the underlay
// address, and the asker's connected socket drops the answer (iperf3 -u
// between TUN addresses failed with "unable to read from stream socket").
func checkWildcardUDPService(t *testing.T, n1, n2 *cluster.Node, ctr *cluster.Container) {
	t.Helper()
	ctx := ctxFor(t, time.Minute)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	echo := n2.Host.NS.Command(ctx, "env", roleEnv+"=udpecho", self, "0.0.0.0:7777", "30")
	out, err := echo.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := echo.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		echo.Process.Kill()
		echo.Wait()
	}()
	if lines := bufio.NewScanner(out); !lines.Scan() || lines.Text() != "listening" {
		t.Fatalf("udpecho did not start: %q", lines.Text())
	}
	server := netip.AddrPortFrom(tunAddr(t, n2), 7777).String()
	for _, ask := range []struct {
		who   string
		ns    *testbed.NS
		local string
	}{{"container on host 1", ctr.NS, "-"}, {"host 1 from its TUN address", n1.Host.NS, tunAddr(t, n1).String()}} {
		if got, err := ask.ns.Run(ctx, "env", roleEnv+"=udpask", self, server, ask.local); err != nil {
			t.Errorf("%s asks the wildcard UDP service at %s on host 2: %v\n%s", ask.who, server, err, got)
		}
	}
}

// checkUnderlaySources: directly routed packets skip weft's receive
// checks, so the kernel checks their source (strict rp_filter on the
// underlay). From host 1, on host 2's L2, packets to host 2's container
// arrive with a source in host 1's subnet (accepted), in host 3's subnet
// (a UDP peer's: dropped) and in host 2's own subnet (dropped).
func checkUnderlaySources(t *testing.T, from *cluster.Node, ctrs []*cluster.Container, victimSubnet, udpPeerSubnet netip.Prefix) {
	t.Helper()
	cases := []struct {
		name string
		src  netip.Addr
		want string
	}{
		{"source in the sending peer's subnet", ctrs[0].IP, "received=20"},
		{"source in a UDP peer's subnet", udpPeerSubnet.Addr().Next().Next(), "received=0"},
		{"source in the receiver's own subnet", victimSubnet.Addr().Next().Next().Next(), "received=0"},
	}
	for i, tc := range cases {
		if got := forge(t, from.Host.NS, ctrs[1], tc.src, uint16(7001+i)); got != tc.want {
			t.Errorf("%s (%s) from host %d's underlay: %s, want %s", tc.name, tc.src, from.Index+1, got, tc.want)
		}
	}
}

// checkL2Source: the router shares hosts 1 and 2's L2. Packets it sends to
// host 2's container with a source in host 1's subnet pass rp_filter (that
// subnet is routed through the underlay) but not the source check, which
// binds host 1's subnet to host 1's MAC address; they are counted in
// weft_direct_source_drops_total. The same packets with the router's own
// address as source arrive.
func checkL2Source(t *testing.T, c *cluster.Cluster, ctrs []*cluster.Container, s1, s2 netip.Prefix) {
	t.Helper()
	n2, router := c.Nodes[1], c.Bed.Router
	err := testbed.WaitFor(ctxFor(t, 20*time.Second), 100*time.Millisecond, func() error {
		out, err := n2.Host.NS.Run(context.Background(), "nft", "list", "table", "ip", "weft-direct")
		if err != nil || !strings.Contains(out, "ip saddr "+s1.String()+" ether saddr != ") {
			return fmt.Errorf("host 1's subnet not bound to its MAC on host 2 yet: %v\n%s", err, out)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	runIn(t, ctxFor(t, 10*time.Second), router, "ip", "route", "add", s2.String(), "via", n2.Host.IP.String(), "dev", "eth0")
	before := sourceDrops(t, n2)
	if got := forge(t, router, ctrs[1], ctrs[0].IP, 7011); got != "received=0" {
		t.Errorf("router forging host 1's container (%s): %s, want received=0", ctrs[0].IP, got)
	}
	if after := sourceDrops(t, n2); after != before+20 {
		t.Errorf("weft_direct_source_drops_total on host 2: %v -> %v, want +20", before, after)
	}
	if got := forge(t, router, ctrs[1], netip.MustParseAddr("192.0.2.254"), 7012); got != "received=20" {
		t.Errorf("router with its own source address: %s, want received=20 (the path works)", got)
	}
}

// forge sends 20 UDP packets with source src from netns to the container's
// port through a raw socket, and returns what a listener there counted.
func forge(t *testing.T, netns *testbed.NS, victim *cluster.Container, src netip.Addr, port uint16) string {
	t.Helper()
	ctx := ctxFor(t, time.Minute)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	listener := victim.NS.Command(ctx, "env", roleEnv+"=udpcount", self, netip.AddrPortFrom(victim.IP, port).String(), "2")
	out, err := listener.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := listener.Start(); err != nil {
		t.Fatal(err)
	}
	defer listener.Wait()
	lines := bufio.NewScanner(out)
	if !lines.Scan() || lines.Text() != "listening" {
		t.Fatalf("udpcount did not start: %q", lines.Text())
	}
	pkt := ipv4UDP(src, victim.IP, port, []byte("forged?"))
	runIn(t, ctx, netns, "env", roleEnv+"=rawsend", self, "20", hex.EncodeToString(pkt))
	if !lines.Scan() {
		t.Fatalf("udpcount printed nothing: %v", lines.Err())
	}
	return lines.Text()
}

// sourceDrops is weft_direct_source_drops_total of node n.
func sourceDrops(t *testing.T, n *cluster.Node) float64 {
	t.Helper()
	f, ok := metrics(t, n)["weft_direct_source_drops_total"]
	if !ok || len(f.GetMetric()) != 1 {
		t.Fatalf("node %d: weft_direct_source_drops_total missing", n.Index+1)
	}
	return f.GetMetric()[0].GetCounter().GetValue()
}
