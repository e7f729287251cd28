//go:build !unit

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
)

// The fault tests: etcd unreachable, weftd restarted, a peer leaving, a
// lease expiring under a running node. Each runs on its own testbed in
// parallel with the others and is bounded in time.

// externalEtcdIP is where the external etcd of a fault test listens: a
// namespace of its own, plugged into the bed's switch.
const externalEtcdIP = "192.0.2.200"

var externalEtcdURL = "http://" + externalEtcdIP + ":2379"

// externalEtcd is a real etcd server (the etcd role of the test binary) in
// its own namespace on the underlay, which a test can stop, freeze or cut.
type externalEtcd struct {
	t    *testing.T
	bed  *testbed.Bed
	host *testbed.Host
	dir  string
	proc *testbed.Proc
}

// newEtcdCluster builds a testbed of hosts with an external etcd on the
// underlay and starts weftd on every host (every node stores the network
// config if none is there).
func newEtcdCluster(t *testing.T, hosts int, opts cluster.Options) (*cluster.Cluster, *externalEtcd) {
	t.Helper()
	opts.EtcdEndpoint = externalEtcdURL
	cfg := opts.NetworkConfig
	if cfg == "" {
		cfg = cluster.DefaultNetworkConfig
	}
	opts.ExtraArgs = append(opts.ExtraArgs, "--network-config", cfg)
	c := newStoppedCluster(t, hosts, opts)
	e := startExternalEtcd(t, c.Bed)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, c, hosts-1)
	return c, e
}

func startExternalEtcd(t *testing.T, bed *testbed.Bed) *externalEtcd {
	t.Helper()
	if bed.Switch == nil {
		t.Fatal("external etcd needs a bridged bed (3 or more hosts)")
	}
	etcdNS, err := testbed.NewNS("wx")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := etcdNS.Delete(); err != nil {
			t.Errorf("delete etcd namespace: %v", err)
		}
	})
	ctx := ctxFor(t, 30*time.Second)
	sw := bed.Switch
	for _, args := range [][]string{
		{"link", "add", "pe", "type", "veth", "peer", "name", "eth0", "netns", etcdNS.Name},
		{"link", "set", "pe", "master", "br0", "up"},
	} {
		runIn(t, ctx, sw, "ip", args...)
	}
	runIn(t, ctx, etcdNS, "ip", "addr", "add", externalEtcdIP+"/24", "dev", "eth0")
	runIn(t, ctx, etcdNS, "ip", "link", "set", "eth0", "up")
	e := &externalEtcd{
		t:    t,
		bed:  bed,
		host: &testbed.Host{NS: etcdNS, Dev: "eth0", IP: netip.MustParseAddr(externalEtcdIP), MTU: 1500},
		dir:  t.TempDir(),
	}
	e.start()
	return e
}

// start runs the etcd server (on the same data directory each time) and
// waits until it answers.
func (e *externalEtcd) start() {
	e.t.Helper()
	self, err := os.Executable()
	if err != nil {
		e.t.Fatal(err)
	}
	logPath := filepath.Join(e.dir, fmt.Sprintf("etcd-%d.log", time.Now().UnixNano()))
	p, err := e.bed.Start(e.host, logPath, "env", roleEnv+"=etcd", self, filepath.Join(e.dir, "data"), externalEtcdURL)
	if err != nil {
		e.t.Fatal(err)
	}
	e.proc = p
	cli := e.client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = testbed.WaitFor(ctx, 100*time.Millisecond, func() error {
		rctx, rcancel := context.WithTimeout(ctx, time.Second)
		defer rcancel()
		_, err := cli.Get(rctx, "/weft-probe")
		return err
	})
	if err != nil {
		e.t.Fatalf("external etcd did not come up: %v\n%s", err, tailFile(logPath))
	}
}

// stop ends the etcd server (SIGTERM; the data stays for start).
func (e *externalEtcd) stop() {
	e.t.Helper()
	if err := e.proc.Signal(syscall.SIGTERM); err != nil {
		e.t.Fatal(err)
	}
	if err := e.proc.Wait(20 * time.Second); err != nil {
		e.proc.Kill()
		e.t.Fatalf("external etcd did not stop: %v", err)
	}
}

// setLink cuts ("down") or restores ("up") the etcd host's switch port:
// a partition, with the server still running.
func (e *externalEtcd) setLink(state string) {
	e.t.Helper()
	runIn(e.t, ctxFor(e.t, 10*time.Second), e.bed.Switch, "ip", "link", "set", "dev", "pe", state)
}

// client is an etcd client whose connections are made inside the etcd
// server's own namespace, so it works while the server is cut off.
func (e *externalEtcd) client() *clientv3.Client {
	return etcdClientIn(e.t, e.host.NS, externalEtcdURL)
}

// etcdClientIn makes an etcd client for endpoint whose connections are
// dialled inside netns (a socket keeps the namespace it was made in).
func etcdClientIn(t *testing.T, netns *testbed.NS, endpoint string) *clientv3.Client {
	t.Helper()
	dial := func(ctx context.Context, addr string) (net.Conn, error) { return netns.DialContext(ctx, "tcp", addr) }
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(dial)},
	})
	if err != nil {
		t.Fatalf("etcd client for %s in %s: %v", endpoint, netns.Name, err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func tailFile(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

// leaseKey is the etcd key of subnet under the default prefix.
func leaseKey(p netip.Prefix) string {
	return fmt.Sprintf("/weft/network/subnets/%s-%d", p.Addr(), p.Bits())
}

// leaseValue is a well-formed udp lease value.
func leaseValue(publicIP string) string {
	return fmt.Sprintf(`{"PublicIP":%q,"BackendType":"udp","BackendData":{"Port":8285}}`, publicIP)
}

func nodeSubnet(t *testing.T, n *cluster.Node) netip.Prefix {
	t.Helper()
	env, err := n.Subnet()
	if err != nil {
		t.Fatal(err)
	}
	return env.Subnet.Masked()
}

// peerEndpoint is the endpoint node n forwards subnet to ("" if none).
func peerEndpoint(ctx context.Context, n *cluster.Node, subnet netip.Prefix) (string, error) {
	st, err := n.Status(ctx)
	if err != nil {
		return "", err
	}
	for _, p := range st.Peers {
		if p.Subnet == subnet.String() {
			return p.Endpoint, nil
		}
	}
	return "", nil
}

// waitPeer waits until node n forwards subnet to endpoint ("" = no route).
func waitPeer(t *testing.T, n *cluster.Node, subnet netip.Prefix, endpoint string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	err := testbed.WaitFor(ctx, 20*time.Millisecond, func() error {
		got, err := peerEndpoint(ctx, n, subnet)
		if err != nil {
			return err
		}
		if got != endpoint {
			return fmt.Errorf("node %d routes %s to %q, want %q", n.Index+1, subnet, got, endpoint)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return time.Since(start)
}

// readyz returns node n's /readyz status code and body.
func readyz(ctx context.Context, n *cluster.Node) (int, string, error) {
	code, body, err := n.Get(ctx, "/readyz")
	return code, string(body), err
}

func waitReadyz(t *testing.T, n *cluster.Node, wantCode int, wantStatus string, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	err := testbed.WaitFor(ctx, 100*time.Millisecond, func() error {
		code, body, err := readyz(ctx, n)
		if err != nil {
			return err
		}
		if code != wantCode || !strings.Contains(body, `"status": "`+wantStatus+`"`) {
			return fmt.Errorf("node %d /readyz: %d %s, want %d %s", n.Index+1, code, body, wantCode, wantStatus)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

var pingSummary = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// startPing pings dst from netns every interval for about d; wait returns
// the packets sent and received.
func startPing(t *testing.T, netns *testbed.NS, dst netip.Addr, interval, d time.Duration) (wait func() (sent, received int)) {
	t.Helper()
	count := int(d / interval)
	ctx := ctxFor(t, d+time.Minute)
	cmd := netns.Command(ctx, "ping", "-n", "-q", "-i", strconv.FormatFloat(interval.Seconds(), 'f', 3, 64),
		"-c", strconv.Itoa(count), "-W", "2", dst.String())
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return func() (int, int) {
		t.Helper()
		_ = cmd.Wait() // ping exits 1 when some replies are missing
		m := pingSummary.FindStringSubmatch(out.String())
		if m == nil {
			t.Fatalf("ping %s: no summary:\n%s", dst, out.String())
		}
		sent, _ := strconv.Atoi(m[1])
		received, _ := strconv.Atoi(m[2])
		return sent, received
	}
}

// etcd unreachable for 60 s, as a partition (cut) and as a stopped server
// (stop): established peers keep forwarding with zero loss, /readyz says
// degraded, and when etcd is back the daemons resync without a restart and
// pick up a lease added meanwhile.
func TestEtcdOutageKeepsForwarding(t *testing.T) {
	for _, mode := range []string{"cut", "stop"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			testEtcdOutage(t, mode, 60*time.Second)
		})
	}
}

func testEtcdOutage(t *testing.T, mode string, outage time.Duration) {
	c, e := newEtcdCluster(t, 3, cluster.Options{})
	a := addContainer(t, c.Nodes[0], "wa")
	b := addContainer(t, c.Nodes[1], "wb")
	cli := e.client()
	// A host that joins while the nodes cannot see etcd.
	newSubnet := netip.PrefixFrom(unleasedAddr(t, c), 24).Masked()

	wait := startPing(t, a.NS, b.IP, 50*time.Millisecond, outage+8*time.Second)
	time.Sleep(2 * time.Second)
	start := time.Now()
	switch mode {
	case "cut":
		e.setLink("down")
		ctx := ctxFor(t, 10*time.Second)
		if _, err := cli.Put(ctx, leaseKey(newSubnet), leaseValue("192.0.2.99")); err != nil {
			t.Fatalf("add a lease during the outage: %v", err)
		}
	case "stop":
		e.stop()
	}
	t.Logf("etcd %s at %s", mode, start.Format(time.TimeOnly))

	// The default --etcd-grace is 30 s: every node must say degraded
	// (and keep its peers) before the outage ends.
	time.Sleep(32 * time.Second)
	for _, n := range c.Nodes {
		waitReadyz(t, n, http.StatusServiceUnavailable, "degraded", 10*time.Second)
		st, err := n.Status(ctxFor(t, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Peers) != 2 {
			t.Errorf("node %d lost peers during the outage: %+v", n.Index+1, st.Peers)
		}
	}
	time.Sleep(time.Until(start.Add(outage)))
	switch mode {
	case "cut":
		e.setLink("up")
	case "stop":
		e.start()
		ctx := ctxFor(t, 10*time.Second)
		if _, err := cli.Put(ctx, leaseKey(newSubnet), leaseValue("192.0.2.99")); err != nil {
			t.Fatalf("add a lease after the restart: %v", err)
		}
	}
	t.Logf("etcd back after %v", time.Since(start).Round(time.Millisecond))
	for _, n := range c.Nodes {
		took := waitPeer(t, n, newSubnet, "192.0.2.99:8285", 30*time.Second)
		waitReadyz(t, n, http.StatusOK, "ready", 30*time.Second)
		t.Logf("node %d resynced %v after etcd returned", n.Index+1, took.Round(time.Millisecond))
		if msgs := n.Notifications(); slices.ContainsFunc(msgs, func(m string) bool { return strings.Contains(m, "STOPPING=1") }) {
			t.Errorf("node %d restarted during the outage: %q", n.Index+1, msgs)
		}
	}
	sent, received := wait()
	t.Logf("ping across the outage: %d sent, %d received", sent, received)
	if sent == 0 || received != sent {
		t.Fatalf("ping across the etcd outage lost %d of %d packets", sent-received, sent)
	}
}

// weftd restarted (SIGTERM, then SIGKILL) on one host: it comes back with
// the same subnet, its container is reachable again within 2 s of READY=1,
// there is one TUN device and the routes are those of before, and the CNI
// allocations survive. Over udp and over wireguard (issue 19), where the
// restarted node also keeps its key (the lease's PublicKey unchanged) and
// the peer's session from before the restart (traffic just flowed) must
// not keep it from reaching the restarted node for long.
func TestDaemonRestart(t *testing.T) {
	t.Parallel()
	t.Run("udp", func(t *testing.T) { daemonRestart(t, cluster.DefaultNetworkConfig) })
	t.Run("wireguard", func(t *testing.T) { daemonRestart(t, wireGuardConfig) })
}

func daemonRestart(t *testing.T, networkConfig string) {
	c := newCluster(t, 2, cluster.Options{NetworkConfig: networkConfig})
	n := c.Nodes[1]
	a := addContainer(t, c.Nodes[0], "wa")
	b := addContainer(t, n, "wb")
	ctx := ctxFor(t, 2*time.Minute)
	if out, err := a.Ping(ctx, b.IP, 2); err != nil {
		t.Fatalf("ping before restart: %v\n%s", err, out)
	}
	wireguard := networkConfig == wireGuardConfig
	var keyBefore string
	if wireguard {
		keyBefore = string(wireGuardLease(t, c, n).BackendData)
	}
	subnetBefore := nodeSubnet(t, n)
	routesBefore := routes(t, n.Host.NS)
	ipamBefore := dirListing(t, filepath.Join(n.Dir, "ipam"))

	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			if err := n.Stop(sig, 15*time.Second); err != nil {
				t.Fatal(err)
			}
			if err := n.Start(); err != nil {
				t.Fatal(err)
			}
			if err := n.WaitReady(ctx); err != nil {
				t.Fatal(err)
			}
			ready := n.ReadyAt()
			// Reachable again: one-packet pings until one is answered.
			var reached time.Time
			for time.Since(ready) < 5*time.Second {
				if _, err := a.NS.Run(ctx, "ping", "-n", "-c", "1", "-W", "0.2", b.IP.String()); err == nil {
					reached = time.Now()
					break
				}
			}
			if reached.IsZero() {
				t.Fatalf("container %s unreachable 5 s after READY=1", b.IP)
			}
			after := reached.Sub(ready)
			t.Logf("after %s: container reachable %v after READY=1", sig, after.Round(time.Millisecond))
			if after > 2*time.Second {
				t.Errorf("container reachable only %v after READY=1, want within 2 s", after)
			}
			if wireguard {
				if got := string(wireGuardLease(t, c, n).BackendData); got != keyBefore {
					t.Errorf("lease after %s restart %s, before %s: the key changed", sig, got, keyBefore)
				}
			}
			if got := nodeSubnet(t, n); got != subnetBefore {
				t.Errorf("subnet after %s restart: %s, want %s", sig, got, subnetBefore)
			}
			tuns := runIn(t, ctx, n.Host.NS, "ip", "-o", "link", "show", "type", "tun")
			if lines := strings.Split(strings.TrimSpace(tuns), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "weft0") {
				t.Errorf("TUN devices after %s restart, want weft0 alone:\n%s", sig, tuns)
			}
			if got := routes(t, n.Host.NS); !slices.Equal(got, routesBefore) {
				t.Errorf("routes after %s restart:\n%s\nwant:\n%s", sig, strings.Join(got, "\n"), strings.Join(routesBefore, "\n"))
			}
			if got := dirListing(t, filepath.Join(n.Dir, "ipam")); !slices.Equal(got, ipamBefore) {
				t.Errorf("CNI allocations after %s restart: %q, want %q", sig, got, ipamBefore)
			}
		})
	}
	// The allocation of the running container is still held: a new
	// container gets another address.
	b2 := addContainer(t, n, "wb")
	if b2.IP == b.IP {
		t.Fatalf("new container got %s, the address of a running one", b2.IP)
	}
	if out, err := a.Ping(ctx, b2.IP, 2); err != nil {
		t.Fatalf("ping new container: %v\n%s", err, out)
	}
}

// routes is the namespace's IPv4 routing table, sorted.
func routes(t *testing.T, netns *testbed.NS) []string {
	t.Helper()
	out := runIn(t, ctxFor(t, 10*time.Second), netns, "ip", "-4", "route", "show", "table", "all")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	slices.Sort(lines)
	return lines
}

// dirListing names the files under dir with their contents.
func dirListing(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if strings.HasSuffix(rel, ".lock") || rel == "lock" {
			return nil
		}
		out = append(out, rel+"="+strings.TrimSpace(string(data)))
		return nil
	})
	if err != nil {
		t.Fatalf("list %s: %v", dir, err)
	}
	return out
}

// smallPoolConfig leaves room for three subnets, so a new host must take
// a freed one.
const smallPoolConfig = `{"Network":"10.244.0.0/16","SubnetLen":24,"SubnetMin":"10.244.1.0","SubnetMax":"10.244.3.0","Backend":{"Type":"udp","Port":8285}}`

// A peer host leaves: its lease deleted (then expired), its route goes
// away on every node within a second; a new host takes the freed subnet
// and every other node reaches it.
func TestPeerLeaves(t *testing.T) {
	t.Parallel()
	const ttl = 4 * time.Second
	c := newStoppedCluster(t, 4, cluster.Options{NetworkConfig: smallPoolConfig, LeaseTTL: ttl})
	startNodes(t, c.Nodes[:3])
	cli := etcdClientIn(t, c.Nodes[0].Host.NS, c.EtcdEndpoint())
	ctx := ctxFor(t, 2*time.Minute)

	leaving, newcomer := c.Nodes[2], c.Nodes[3]
	freed := nodeSubnet(t, leaving)
	if err := leaving.Stop(syscall.SIGKILL, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Delete(ctx, leaseKey(freed)); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes[:2] {
		took := waitPeer(t, n, freed, "", time.Second)
		t.Logf("lease deleted: node %d dropped %s after %v", n.Index+1, freed, took.Round(time.Millisecond))
	}

	startNodes(t, []*cluster.Node{newcomer})
	if got := nodeSubnet(t, newcomer); got != freed {
		t.Fatalf("new host took %s, want the freed %s (pool of three)", got, freed)
	}
	for _, n := range c.Nodes[:2] {
		waitPeer(t, n, freed, newcomer.Host.IP.String()+":8285", 5*time.Second)
		runIn(t, ctx, n.Host.NS, "ping", "-n", "-c", "2", "-i", "0.2", "-W", "2", tunAddr(t, newcomer).String())
	}

	// Expiry: the newcomer dies without a word; its lease runs out after
	// at most the TTL (renewals every TTL/3), and its route goes at once.
	if err := newcomer.Stop(syscall.SIGKILL, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	for _, n := range c.Nodes[:2] {
		waitPeer(t, n, freed, "", ttl+2*time.Second-time.Since(killed))
		t.Logf("lease expired: node %d dropped %s %v after the kill (TTL %v)", n.Index+1, freed, time.Since(killed).Round(time.Millisecond), ttl)
	}
}

// startNodes starts weftd on nodes and waits until each is ready and
// sees the others.
func startNodes(t *testing.T, nodes []*cluster.Node) {
	t.Helper()
	ctx := ctxFor(t, 90*time.Second)
	for _, n := range nodes {
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		if err := n.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// Lease expiry while the node is up: renewals blocked (a blackhole route
// to etcd) until the lease expires. When etcd is reachable again the node
// re-takes its subnet; if another host took it meanwhile, the node exits
// with an error instead of running with a subnet it does not own.
func TestLeaseExpiryWhileUp(t *testing.T) {
	t.Parallel()
	const ttl = 3 * time.Second
	c, e := newEtcdCluster(t, 3, cluster.Options{LeaseTTL: ttl})
	cli := e.client()
	n, other := c.Nodes[1], c.Nodes[0]
	own := nodeSubnet(t, n)
	ctx := ctxFor(t, 2*time.Minute)
	block := func(action string) {
		runIn(t, ctx, n.Host.NS, "ip", "route", action, "blackhole", externalEtcdIP+"/32")
	}
	waitKeyGone := func() {
		err := testbed.WaitFor(ctxFor(t, 3*ttl), 100*time.Millisecond, func() error {
			resp, err := cli.Get(ctx, leaseKey(own))
			if err != nil {
				return err
			}
			if len(resp.Kvs) > 0 {
				return fmt.Errorf("lease %s still in etcd", own)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	t.Run("retake", func(t *testing.T) {
		block("add")
		waitKeyGone()
		// The node knows its lease ran out.
		waitReadyz(t, n, http.StatusServiceUnavailable, "not-ready", 2*ttl)
		block("del")
		err := testbed.WaitFor(ctxFor(t, 20*time.Second), 100*time.Millisecond, func() error {
			resp, err := cli.Get(ctx, leaseKey(own))
			if err != nil {
				return err
			}
			if len(resp.Kvs) == 0 || !strings.Contains(string(resp.Kvs[0].Value), n.Host.IP.String()) {
				return fmt.Errorf("lease %s not re-taken: %v", own, resp.Kvs)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		waitReadyz(t, n, http.StatusOK, "ready", 10*time.Second)
		waitPeer(t, other, own, n.Host.IP.String()+":8285", 10*time.Second)
		if got := nodeSubnet(t, n); got != own {
			t.Fatalf("subnet after re-take %s, want %s", got, own)
		}
		runIn(t, ctx, other.Host.NS, "ping", "-n", "-c", "2", "-i", "0.2", "-W", "2", tunAddr(t, n).String())
	})

	t.Run("taken-meanwhile", func(t *testing.T) {
		block("add")
		waitKeyGone()
		// Another host takes the subnet while the node cannot see etcd.
		if _, err := cli.Put(ctx, leaseKey(own), leaseValue("192.0.2.77")); err != nil {
			t.Fatal(err)
		}
		block("del")
		err := n.WaitExit(30 * time.Second)
		if err == nil || errors.Is(err, testbed.ErrWaitTimeout) {
			t.Fatalf("weftd whose subnet was taken: exit %v, want a non-zero exit", err)
		}
		if log := n.Log(20); !strings.Contains(log, "lease lost") {
			t.Errorf("weftd log does not say the lease was lost:\n%s", log)
		}
		waitPeer(t, other, own, "192.0.2.77:8285", 10*time.Second)
	})
}
