//go:build !unit

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/flannel"
)

// maxSwapLoss is what a swap may cost the traffic that crosses it.
const maxSwapLoss = time.Second

// traffic is a continuous ping and a TCP stream between two containers,
// started before a swap and judged after it.
type traffic struct {
	what    string
	ping    *exec.Cmd
	pingO   *syncBuffer
	stream  *exec.Cmd
	streamO *syncBuffer
	server  *exec.Cmd
}

// startTraffic runs, from container ns a to address b (a container in
// namespace bNS), ping every 100 ms and an iperf3 TCP stream at 20 Mbit/s
// reported every 100 ms, for d.
func startTraffic(t *testing.T, what string, a, bNS *testbed.NS, b netip.Addr, port int, d time.Duration) *traffic {
	t.Helper()
	ctx := ctxFor(t, d+time.Minute)
	tr := &traffic{what: what, pingO: &syncBuffer{}, streamO: &syncBuffer{}}
	tr.server = bNS.Command(ctx, "iperf3", "-s", "-1", "-p", strconv.Itoa(port))
	if err := tr.server.Start(); err != nil {
		t.Fatal(err)
	}
	// The client must not start before the server listens: a fixed pause
	// was too short at load 30 (CI: "unable to connect to server:
	// Connection refused"). Wait for the listening socket, bounded.
	for deadline := time.Now().Add(15 * time.Second); ; {
		out, err := bNS.Run(ctx, "ss", "-Hltn", "sport = :"+strconv.Itoa(port))
		if err == nil && strings.TrimSpace(out) != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: iperf3 server on port %d not listening after 15 s (%v)", what, port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	secs := strconv.Itoa(int(d.Seconds()))
	count := strconv.Itoa(int(d / (100 * time.Millisecond)))
	tr.ping = a.Command(ctx, "ping", "-i", "0.1", "-c", count, "-W", "1", b.String())
	tr.ping.Stdout, tr.ping.Stderr = tr.pingO, tr.pingO
	tr.stream = a.Command(ctx, "iperf3", "-c", b.String(), "-p", strconv.Itoa(port), "-t", secs, "-b", "20M", "-i", "0.1", "-J")
	tr.stream.Stdout = tr.streamO
	for _, c := range []*exec.Cmd{tr.ping, tr.stream} {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	}
	return tr
}

// judge waits for the traffic and fails the test when more than
// maxSwapLoss of it was lost: pings unanswered (10 per second), or the
// longest run of 100 ms intervals in which the stream moved nothing.
func (tr *traffic) judge(t *testing.T) {
	t.Helper()
	_ = tr.ping.Wait() // non-zero with any loss: judged below
	serr := tr.stream.Wait()
	_ = tr.server.Wait()
	m := pingSummary.FindStringSubmatch(tr.pingO.String())
	if m == nil {
		t.Fatalf("%s: no ping summary:\n%s", tr.what, tr.pingO.String())
	}
	sent, _ := strconv.Atoi(m[1])
	got, _ := strconv.Atoi(m[2])
	lost := time.Duration(sent-got) * 100 * time.Millisecond
	var res struct {
		Intervals []struct {
			Sum struct {
				Bytes   float64 `json:"bytes"`
				Seconds float64 `json:"seconds"`
			} `json:"sum"`
		} `json:"intervals"`
	}
	if err := json.Unmarshal([]byte(tr.streamO.String()), &res); err != nil || len(res.Intervals) == 0 {
		t.Fatalf("%s: iperf3 (%v): %v\n%.2000s", tr.what, serr, err, tr.streamO.String())
	}
	var stall, longest float64
	for _, iv := range res.Intervals {
		if iv.Sum.Bytes == 0 {
			stall += iv.Sum.Seconds
			longest = max(longest, stall)
		} else {
			stall = 0
		}
	}
	stalled := time.Duration(longest * float64(time.Second))
	t.Logf("%s: ping %d/%d answered (%v lost), TCP stream's longest stall %v over %d intervals", tr.what, got, sent, lost, stalled, len(res.Intervals))
	if lost > maxSwapLoss || stalled > maxSwapLoss {
		t.Errorf("%s: lost %v of pings, stream stalled %v: more than %v", tr.what, lost, stalled, maxSwapLoss)
	}
	if got == 0 {
		t.Errorf("%s: no ping answered at all", tr.what)
	}
}

// A three-node flannel cluster (the real flanneld, vxlan, containers
// attached by flannel's CNI plugin with Debian's bridge and host-local) moves to weft one node
// at a time and back, as docs/flannel-migration.md describes: on each
// node flanneld stops (its device, neighbours, FDB entries and routes
// stay in the kernel) and weftd starts on flannel's prefix with flannel's
// subnet file: it takes the node's own lease and subnet, keeps flannel.1
// and its MAC, and the containers keep their addresses. Traffic crossing
// the node being swapped, and traffic between the other two nodes, loses
// at most a second per swap. Then back to flanneld, node by node.
func TestMigrateFlannelToWeftAndBack(t *testing.T) {
	bin := flanneldBin(t)
	bed := testbed.ForTest(t, "wmg", 3)
	etcd := flannelEtcd(t, bed)
	c := newStoppedClusterOn(t, bed, weftOnFlannelPrefix(etcd))
	// The flannel cluster's config, as flannel's documentation stores it.
	if _, err := etcdClientIn(t, bed.Hosts[0].NS, etcd).Put(ctxFor(t, 10*time.Second), flannel.DefaultPrefix+"/config", vxlanConfig); err != nil {
		t.Fatal(err)
	}
	flanneld := make([]*testbed.Proc, 3)
	envs := make([]flannelEnv, 3)
	for i, n := range c.Nodes {
		flanneld[i], envs[i] = startFlanneld(t, c, n, bin, etcd)
	}
	ctrs := make([]*testbed.NS, 3)
	ips := make([]netip.Addr, 3)
	for i, n := range c.Nodes {
		ctrs[i], ips[i] = flannelContainer(t, n, flannelCNIConf(n, n.FlannelSubnetFile))
	}
	ctx := ctxFor(t, 5*time.Minute)
	for i := range ctrs {
		j := (i + 1) % 3
		if out, err := ctrs[i].Run(ctx, "ping", "-c", "2", "-W", "2", ips[j].String()); err != nil {
			t.Fatalf("flannel cluster before the move: container %d -> %d: %v\n%s", i+1, j+1, err, out)
		}
	}

	const window = 8 * time.Second
	swap := func(x int, toWeft bool) {
		t.Helper()
		a, b := (x+1)%3, (x+2)%3
		what := fmt.Sprintf("node %d to weft", x+1)
		if !toWeft {
			what = fmt.Sprintf("node %d back to flanneld", x+1)
		}
		across := startTraffic(t, what+": container "+strconv.Itoa(a+1)+" -> swapped node's", ctrs[a], ctrs[x], ips[x], 5201, window)
		others := startTraffic(t, what+": between the other nodes' containers", ctrs[b], ctrs[a], ips[a], 5202, window)
		time.Sleep(2 * time.Second)
		n := c.Nodes[x]
		if toWeft {
			if err := flanneld[x].Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if err := flanneld[x].Wait(20 * time.Second); err != nil {
				t.Logf("flanneld on node %d: %v", x+1, err)
			}
			if err := n.Start(); err != nil {
				t.Fatal(err)
			}
			if err := n.WaitReady(ctx); err != nil {
				t.Fatal(err)
			}
		} else {
			if err := n.Stop(syscall.SIGTERM, 30*time.Second); err != nil {
				t.Fatal(err)
			}
			flanneld[x], _ = startFlanneld(t, c, n, bin, etcd)
		}
		across.judge(t)
		others.judge(t)
		e := readFlannelEnv(t, n.FlannelSubnetFile)
		if e.subnet != envs[x].subnet {
			t.Fatalf("%s: subnet %s, was %s: the node was renumbered", what, e.subnet, envs[x].subnet)
		}
	}
	for x := range 3 {
		swap(x, true)
	}
	// All weft now: each lease is weftd's, on the subnets flanneld had.
	for _, n := range c.Nodes {
		waitPeersOf(t, n, 2)
	}
	// flannel's plugin attaches new containers on a weftd node (it reads
	// the subnet file weftd writes), and they reach the others.
	late, lateIP := flannelContainer(t, c.Nodes[0], flannelCNIConf(c.Nodes[0], c.Nodes[0].FlannelSubnetFile))
	if !envs[0].subnet.Masked().Contains(lateIP) {
		t.Fatalf("new container on node 1 under weftd got %s, outside the node's subnet %s", lateIP, envs[0].subnet)
	}
	for _, j := range []int{1, 2} {
		if out, err := late.Run(ctx, "ping", "-c", "2", "-W", "2", ips[j].String()); err != nil {
			t.Errorf("new container on node 1 (weftd) -> container %d: %v\n%s", j+1, err, out)
		}
	}
	for x := range 3 {
		swap(x, false)
	}
}

// flannelEtcd is the etcd every node of a flannel test uses, on the first
// host's underlay address (its sockets in that host's namespace).
func flannelEtcd(t *testing.T, bed *testbed.Bed) string {
	return flannel.StartEtcd(t, bed.Hosts[0])
}

// syncBuffer is a bytes.Buffer a command writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
