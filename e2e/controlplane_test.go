//go:build !unit

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftnet/weft/subnet/etcdtest"
	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
)

// The control plane takes etcd content as input, not truth: a stray etcd
// writer must not renumber a host, cut a node off, point peers at loopback
// or broadcast, or flood the logs and memory of every node.

// logLines counts the lines of a node's log.
func logLines(t *testing.T, n *cluster.Node) int {
	t.Helper()
	data, err := os.ReadFile(n.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), "\n")
}

func logSize(t *testing.T, n *cluster.Node) int64 {
	t.Helper()
	fi, err := os.Stat(n.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// logSince returns the log lines after the first skip lines.
func logSince(t *testing.T, n *cluster.Node, skip int) []string {
	t.Helper()
	data, err := os.ReadFile(n.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if skip > len(lines) {
		return nil
	}
	return lines[skip:]
}

func firstLines(lines []string, n int) []string { return lines[:min(len(lines), n)] }

func peersOf(t *testing.T, ctx context.Context, n *cluster.Node) []string {
	t.Helper()
	st, err := n.Status(ctx)
	if err != nil {
		t.Fatalf("node %d: %v\n%s", n.Index+1, err, n.Log(20))
	}
	var got []string
	for _, p := range st.Peers {
		got = append(got, p.Subnet+"="+p.Endpoint)
	}
	slices.Sort(got)
	return got
}

// Item 4: a host must not come back on a new subnet when (a) the key of
// the subnet in its subnet file holds junk, (c) its PublicIP holds a
// reservation on another subnet, or (b) the network config changed so that
// its subnet is no longer in it.
func TestRefusesToRenumberOnJunkOrNewNetwork(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2, cluster.Options{})
	a, b := c.Nodes[0], c.Nodes[1]
	cli := etcdClientIn(t, a.Host.NS, c.EtcdEndpoint())
	ctx := ctxFor(t, 3*time.Minute)
	if err := b.Stop(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	envB, err := b.Subnet()
	if err != nil {
		t.Fatal(err)
	}
	sB := envB.Subnet.Masked()
	mustRefuse := func(why, want string) {
		t.Helper()
		if err := b.Start(); err != nil {
			t.Fatal(err)
		}
		if err := b.WaitExit(30 * time.Second); err == nil || errors.Is(err, testbed.ErrWaitTimeout) {
			env, _ := b.Subnet()
			t.Fatalf("%s: weftd did not exit with an error (%v); subnet file now %s (was %s)\n%s", why, err, env.Subnet, envB.Subnet, b.Log(20))
		}
		log := b.Log(5)
		if !strings.Contains(log, "refusing to renumber") || !strings.Contains(log, want) {
			t.Fatalf("%s: weftd did not say why it stopped (want %q):\n%s", why, want, log)
		}
		if after, err := b.Subnet(); err != nil || after.Subnet != envB.Subnet {
			t.Fatalf("%s: subnet file changed to %v (%v): the host was renumbered", why, after.Subnet, err)
		}
	}

	// (a) junk on b's own key, without a TTL, as `etcdctl put` leaves it.
	if _, err := cli.Put(ctx, leaseKey(sB), `{"PublicIP":"`+b.Host.IP.String()+`",`); err != nil {
		t.Fatal(err)
	}
	mustRefuse("junk on the node's own key", "no usable lease")
	resp, err := cli.Get(ctx, "/weft/network/subnets/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if strings.Contains(string(kv.Value), `"`+b.Host.IP.String()+`"`) && string(kv.Key) != leaseKey(sB) {
			t.Fatalf("node 2 took %s although it refused to start", kv.Key)
		}
	}

	// (c) b's key is free again, but b's PublicIP holds a reservation on
	// another subnet (someone wrote it): it would be used instead.
	if _, err := cli.Delete(ctx, leaseKey(sB)); err != nil {
		t.Fatal(err)
	}
	sA := nodeSubnet(t, a)
	elsewhere := netip.MustParsePrefix("10.244.250.0/24")
	if elsewhere == sA || elsewhere == sB {
		elsewhere = netip.MustParsePrefix("10.244.251.0/24")
	}
	if elsewhere == sA || elsewhere == sB {
		elsewhere = netip.MustParsePrefix("10.244.252.0/24")
	}
	if _, err := cli.Put(ctx, leaseKey(elsewhere), leaseValue(b.Host.IP.String())); err != nil {
		t.Fatal(err)
	}
	mustRefuse("a reservation of the node's PublicIP elsewhere", "would be used instead of")
	if _, err := cli.Delete(ctx, leaseKey(elsewhere)); err != nil {
		t.Fatal(err)
	}

	// (b) the network changed: 10.244.0.0/16 -> 10.245.0.0/16.
	if _, err := cli.Put(ctx, "/weft/network/config", `{"Network":"10.245.0.0/16","SubnetLen":24,"Backend":{"Type":"udp","Port":8285}}`); err != nil {
		t.Fatal(err)
	}
	mustRefuse("network config changed", "network config changed")
	if resp, err := cli.Get(ctx, "/weft/network/subnets/10.245.", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count != 0 {
		t.Fatalf("a lease in the new network was taken (%v, %v)", resp, err)
	}
	// The operator's consent: remove the subnet file; the node starts in
	// the new network.
	if err := os.Remove(b.SubnetFile); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitReady(ctx); err != nil {
		t.Fatalf("node 2 did not start after its subnet file was removed: %v\n%s", err, b.Log(20))
	}
	if env, err := b.Subnet(); err != nil || !netip.MustParsePrefix("10.245.0.0/16").Contains(env.Subnet.Addr()) {
		t.Fatalf("node 2 in the new network: %v %v", env.Subnet, err)
	}
}

// Items 5-8 against running daemons: what a stray etcd writer does to the
// lease keys. Also measures log lines and RSS under junk (docs/reliability.md).
func TestStrayEtcdWriter(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2, cluster.Options{})
	n1, n2 := c.Nodes[0], c.Nodes[1]
	ca := addContainer(t, n1, "sa")
	cb := addContainer(t, n2, "sb")
	cli := etcdClientIn(t, n1.Host.NS, c.EtcdEndpoint())
	ctx := ctxFor(t, 5*time.Minute)
	s1, s2 := nodeSubnet(t, n1), nodeSubnet(t, n2)
	want := map[*cluster.Node][]string{
		n1: {s2.String() + "=" + n2.Host.IP.String() + ":8285"},
		n2: {s1.String() + "=" + n1.Host.IP.String() + ":8285"},
	}
	// Free /24s for the test's own keys: never a node's subnet.
	var free []netip.Prefix
	for third := 254; third > 0; third-- {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(third), 0}), 24)
		if p != s1 && p != s2 {
			free = append(free, p)
		}
	}
	badIPSubnets, fake, bigSubnets := free[:6], free[6], free[7:47]
	checkPeers := func(when string) {
		t.Helper()
		for _, n := range c.Nodes {
			if got := peersOf(t, ctx, n); !slices.Equal(got, want[n]) {
				t.Errorf("%s: node %d routes %q, want %q", when, n.Index+1, got, want[n])
			}
		}
		if out, err := ca.Ping(ctx, cb.IP, 2); err != nil {
			t.Errorf("%s: ping: %v\n%s", when, err, out)
		}
	}

	// Item 5: node 1's lease gets another port (same PublicIP). Node 1
	// puts its value back; node 2 routes to :8285 again.
	changed, err := cli.Put(ctx, leaseKey(s1), fmt.Sprintf(`{"PublicIP":"%s","BackendType":"udp","BackendData":{"Port":9}}`, n1.Host.IP))
	if err != nil {
		t.Fatal(err)
	}
	err = testbed.WaitFor(ctx, 100*time.Millisecond, func() error {
		resp, err := cli.Get(ctx, leaseKey(s1))
		if err != nil {
			return err
		}
		if len(resp.Kvs) != 1 || resp.Kvs[0].ModRevision <= changed.Header.Revision ||
			!strings.Contains(string(resp.Kvs[0].Value), `"Port":8285`) || resp.Kvs[0].Lease == 0 {
			return fmt.Errorf("node 1's key holds %s (lease %x)", resp.Kvs[0].Value, resp.Kvs[0].Lease)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("node 1 did not put its value back: %v\n%s", err, n1.Log(20))
	}
	waitPeer(t, n2, s1, n1.Host.IP.String()+":8285", 20*time.Second)
	checkPeers("after a port change on node 1's key")

	// Item 6: leases whose PublicIP would send to loopback, this host,
	// the link or a group never become peers.
	for i, ip := range []string{"127.0.0.1", "0.0.0.0", "255.255.255.255", "224.0.0.251", "169.254.169.254", "240.0.0.1"} {
		if _, err := cli.Put(ctx, leaseKey(badIPSubnets[i]), leaseValue(ip)); err != nil {
			t.Fatal(err)
		}
	}

	// Item 8: a peer whose endpoint changes without a delete: WARN.
	if _, err := cli.Put(ctx, leaseKey(fake), leaseValue("192.0.2.77")); err != nil {
		t.Fatal(err)
	}
	waitPeer(t, n2, fake, "192.0.2.77:8285", 10*time.Second)
	if _, err := cli.Put(ctx, leaseKey(fake), leaseValue("192.0.2.78")); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes {
		waitPeer(t, n, fake, "192.0.2.78:8285", 10*time.Second)
		err := testbed.WaitFor(ctxFor(t, 10*time.Second), 100*time.Millisecond, func() error {
			for _, l := range logSince(t, n, 0) {
				if strings.Contains(l, "level=WARN") && strings.Contains(l, "endpoint changed without its lease being deleted") &&
					strings.Contains(l, "192.0.2.77:8285") && strings.Contains(l, "192.0.2.78:8285") {
					return nil
				}
			}
			return errors.New("no WARN line naming 192.0.2.77:8285 and 192.0.2.78:8285")
		})
		if err != nil {
			t.Errorf("node %d did not WARN about the changed endpoint: %v\n%s", n.Index+1, err, n.Log(40))
		}
	}
	if _, err := cli.Delete(ctx, leaseKey(fake)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // no event to wait for: the bad leases must simply not appear
	checkPeers("after leases with bad PublicIPs")

	// Item 7: 5,000 malformed keys, each written on its own (5,000 watch
	// events): log lines per node while running and at a restart.
	before := map[*cluster.Node]int{n1: logLines(t, n1), n2: logLines(t, n2)}
	const junkKeys = 5000
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < junkKeys; i += 8 {
				var k, v string
				switch i % 4 {
				case 0:
					k, v = fmt.Sprintf("/weft/network/subnets/junk-%d", i), "x"
				case 1:
					k, v = fmt.Sprintf("/weft/network/subnets/10.244.%d.%d-32", i/256, i%256), leaseValue("192.0.2.66")
				case 2:
					k, v = fmt.Sprintf("/weft/network/subnets/10.%d.%d.0-24", 100+i/256, i%256), `{"PublicIP":`
				default:
					k, v = fmt.Sprintf("/weft/network/subnets/10.%d.%d.0-24", 100+i/256, i%256), leaseValue("127.0.0.1")
				}
				if _, err := cli.Put(ctx, k, v); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	bad := float64(junkKeys + 6) // and the six bad PublicIPs
	for _, n := range c.Nodes {
		n := n
		err := testbed.WaitFor(ctx, 200*time.Millisecond, func() error {
			if v := gauge(metrics(t, n), "weft_malformed_leases"); v != bad {
				return fmt.Errorf("node %d: weft_malformed_leases = %v, want %v", n.Index+1, v, bad)
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}
	running := map[*cluster.Node]int{}
	for _, n := range c.Nodes {
		running[n] = logLines(t, n) - before[n]
		t.Logf("node %d: %d log lines for %d malformed keys written one by one", n.Index+1, running[n], junkKeys)
		if running[n] > 10 {
			t.Errorf("node %d logged %d lines for %d malformed keys, want at most 10:\n%s",
				n.Index+1, running[n], junkKeys, strings.Join(firstLines(logSince(t, n, before[n]), 20), "\n"))
		}
	}
	checkPeers("after 5,000 malformed keys")

	// A restart on top of the junk.
	if err := n2.Stop(syscall.SIGTERM, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	startLine := logLines(t, n2)
	if err := n2.Start(); err != nil {
		t.Fatal(err)
	}
	if err := n2.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, c, 1)
	time.Sleep(time.Second)
	restartLog := logSince(t, n2, startLine)
	malformedLines := 0
	for _, l := range restartLog {
		if strings.Contains(l, "malformed") {
			malformedLines++
		}
	}
	t.Logf("node 2 restart on %d malformed keys: %d log lines, %d about the junk", junkKeys, len(restartLog), malformedLines)
	if malformedLines > 5 || len(restartLog) > 40 {
		t.Errorf("restart logged %d lines (%d about junk), want at most 40 and 5 (one per listing):\n%s", len(restartLog), malformedLines, strings.Join(firstLines(restartLog, 30), "\n"))
	}
	checkPeers("after a restart on the junk")

	// Item 7: 40 values of 1 MB: RSS and log growth of node 2 (node 1
	// runs the embedded etcd, which holds them).
	rss := func() float64 { return gauge(metrics(t, n2), "process_resident_memory_bytes") / (1 << 20) }
	rss0, log0 := rss(), logSize(t, n2) // a fresh weftd (just restarted) on 5,000 small junk keys
	mb := strings.Repeat("M", 1<<20)
	for _, p := range bigSubnets {
		if _, err := cli.Put(ctx, leaseKey(p), mb); err != nil {
			t.Fatal(err)
		}
	}
	err = testbed.WaitFor(ctx, 200*time.Millisecond, func() error {
		if v := gauge(metrics(t, n2), "weft_malformed_leases"); v != bad+40 {
			return fmt.Errorf("weft_malformed_leases = %v, want %v", v, bad+40)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rss1, log1 := rss(), logSize(t, n2)
	// and a restart that lists them all
	if err := n2.Stop(syscall.SIGTERM, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := n2.Start(); err != nil {
		t.Fatal(err)
	}
	if err := n2.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, c, 1)
	rss2, log2 := rss(), logSize(t, n2)
	t.Logf("node 2 with 40 x 1 MB values: RSS %.1f (fresh) -> %.1f MiB while running, %.1f MiB after a restart on them; log +%d bytes, +%d at the restart",
		rss0, rss1, rss2, log1-log0, log2-log1)
	if rss1 > rss0+32 || rss2 > rss0+32 {
		t.Errorf("RSS grew from %.1f to %.1f / %.1f MiB with 40 MB of junk, want at most +32 MiB", rss0, rss1, rss2)
	}
	if log1-log0 > 16<<10 || log2-log1 > 16<<10 {
		t.Errorf("log grew by %d and %d bytes for 40 MB of junk, want at most 16 KiB each", log1-log0, log2-log1)
	}
	checkPeers("after 40 MB of junk")
	code, body, err := readyz(ctx, n2)
	if err != nil || code != http.StatusOK {
		t.Errorf("node 2 /readyz %d %s %v", code, body, err)
	}
}

// Item 8: weftd works with an etcd user whose role grants read and write
// on weft's prefix only (auth enabled on a real etcd).
func TestPrefixOnlyEtcdRole(t *testing.T) {
	t.Parallel()
	opts := cluster.Options{
		EtcdEndpoint: externalEtcdURL,
		ExtraArgs: []string{"--network-config", cluster.DefaultNetworkConfig,
			"--etcd-username", "weft-node", "--etcd-password", "node-secret"},
	}
	c := newStoppedCluster(t, 3, opts)
	e := startExternalEtcd(t, c.Bed)
	etcdtest.EnableAuth(t, e.client(), "/weft/network/", "weft-node", "node-secret")
	ctx := ctxFor(t, 3*time.Minute)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, c, 2)
	ca := addContainer(t, c.Nodes[0], "ra")
	cb := addContainer(t, c.Nodes[2], "rb")
	if out, err := ca.Ping(ctx, cb.IP, 2); err != nil {
		t.Fatalf("ping with prefix-only etcd users: %v\n%s", err, out)
	}
	for _, n := range c.Nodes {
		code, body, err := readyz(ctx, n)
		if err != nil || code != http.StatusOK {
			t.Errorf("node %d /readyz %d %s %v", n.Index+1, code, body, err)
		}
	}
	// A restart goes through the previous-subnet check and lease reuse.
	n := c.Nodes[1]
	s := nodeSubnet(t, n)
	if err := n.Stop(syscall.SIGTERM, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitReady(ctx); err != nil {
		t.Fatalf("restart with a prefix-only role: %v\n%s", err, n.Log(20))
	}
	if got := nodeSubnet(t, n); got != s {
		t.Errorf("node 2 came back with %s, want %s", got, s)
	}
}
