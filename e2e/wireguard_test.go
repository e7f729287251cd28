package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
)

// wireGuardConfig is the acceptance's network config.
const wireGuardConfig = `{"Network":"10.244.0.0/16","Backend":{"Type":"wireguard"}}`

// wireGuardPort is the backend's default ListenPort.
const wireGuardPort = 51820

// startPair starts weftd on the given nodes only (the bed may hold more
// hosts) and waits until each has the others as peers.
func startPair(t *testing.T, nodes ...*cluster.Node) {
	t.Helper()
	startNodes(t, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range nodes {
		err := testbed.WaitFor(ctx, 50*time.Millisecond, func() error {
			st, err := n.Status(ctx)
			if err != nil {
				return err
			}
			if len(st.Peers) != len(nodes)-1 {
				return fmt.Errorf("node %d has %d peers, want %d", n.Index+1, len(st.Peers), len(nodes)-1)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// wireGuardLease reads node n's lease from etcd and checks it is a
// wireguard lease with a 32-byte base64 PublicKey; it returns the lease.
func wireGuardLease(t *testing.T, c *cluster.Cluster, n *cluster.Node) subnet.LeaseAttrs {
	t.Helper()
	cli := etcdClientIn(t, c.Nodes[0].Host.NS, c.EtcdEndpoint())
	resp, err := cli.Get(ctxFor(t, 10*time.Second), leaseKey(nodeSubnet(t, n)))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("lease of node %d: %v (%d keys)", n.Index+1, err, len(resp.Kvs))
	}
	var a subnet.LeaseAttrs
	if err := json.Unmarshal(resp.Kvs[0].Value, &a); err != nil {
		t.Fatalf("lease of node %d: %v", n.Index+1, err)
	}
	var data struct {
		PublicKey string
		Port      int
	}
	if err := json.Unmarshal(a.BackendData, &data); err != nil {
		t.Fatalf("lease of node %d: BackendData %s: %v", n.Index+1, a.BackendData, err)
	}
	key, err := base64.StdEncoding.DecodeString(data.PublicKey)
	if a.BackendType != "wireguard" || err != nil || len(key) != 32 || data.Port != wireGuardPort || a.PublicIP != n.Host.IP.String() {
		t.Fatalf("lease of node %d: %s, want a wireguard lease with a 32-byte base64 PublicKey and Port %d", n.Index+1, resp.Kvs[0].Value, wireGuardPort)
	}
	return a
}

// pcapUDP reads an Ethernet pcap file (tcpdump -w) and returns the IPv4
// packets carrying UDP, whole (header included), in capture order.
func pcapUDP(t *testing.T, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 24 || binary.LittleEndian.Uint32(data) != 0xa1b2c3d4 || binary.LittleEndian.Uint32(data[20:]) != 1 {
		t.Fatalf("%s: not a little-endian Ethernet pcap file (%d bytes)", path, len(data))
	}
	var out [][]byte
	for off := 24; off+16 <= len(data); {
		n := int(binary.LittleEndian.Uint32(data[off+8:]))
		off += 16
		if off+n > len(data) {
			break
		}
		frame := data[off : off+n]
		off += n
		if len(frame) < 14+20 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
			continue
		}
		ip := frame[14:]
		if ip[9] != 17 {
			continue
		}
		if total := int(binary.BigEndian.Uint16(ip[2:])); total <= len(ip) {
			ip = ip[:total]
		}
		out = append(out, append([]byte(nil), ip...))
	}
	return out
}

// startCapture runs tcpdump in netns on dev with filter, writing to a file;
// stop ends it and returns the file.
func startCapture(t *testing.T, netns *testbed.NS, dev, filter string) (stop func() string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "capture.pcap")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	args := append([]string{"-i", dev, "-n", "-U", "-s", "0", "-w", path}, strings.Fields(filter)...)
	cmd := netns.Command(ctx, "tcpdump", args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("tcpdump: %v", err)
	}
	// tcpdump says "listening on" once the capture runs.
	lines := bufio.NewScanner(stderr)
	for lines.Scan() && !strings.Contains(lines.Text(), "listening on") {
	}
	go func() {
		for lines.Scan() {
		}
	}()
	stopped := false
	stop = func() string {
		if !stopped {
			stopped = true
			time.Sleep(300 * time.Millisecond)
			_ = cmd.Process.Signal(os.Interrupt)
			_ = cmd.Wait()
			cancel()
		}
		return path
	}
	t.Cleanup(func() { stop() })
	return stop
}

// udpCounter runs the udpcount role in netns on addr for secs seconds;
// wait returns what it received.
func udpCounter(t *testing.T, netns *testbed.NS, addr netip.AddrPort, secs int) (wait func() string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := netns.Command(ctxFor(t, time.Duration(secs+60)*time.Second), "env", roleEnv+"=udpcount", self, addr.String(), fmt.Sprint(secs))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	if !lines.Scan() || lines.Text() != "listening" {
		t.Fatalf("udpcount did not start: %q", lines.Text())
	}
	return func() string {
		lines.Scan()
		got := lines.Text()
		_ = cmd.Wait()
		return got
	}
}

// Acceptance of the wireguard backend: two hosts with the acceptance's
// config; containers talk; both leases carry a 32-byte base64 PublicKey; a
// capture on the underlay has no container payload in clear; replaying
// host 1's captured datagrams three times from another underlay address
// forged as host 1, and datagrams forged in weft's and WireGuard's formats,
// deliver nothing to the container, and the node stays ready.
func TestWireGuardTwoHosts(t *testing.T) {
	// Three hosts on one L2: weftd on the first two, the third is the
	// underlay attacker.
	c := newStoppedCluster(t, 3, cluster.Options{NetworkConfig: wireGuardConfig})
	n1, n2, attacker := c.Nodes[0], c.Nodes[1], c.Nodes[2].Host
	startPair(t, n1, n2)
	ctx := ctxFor(t, 3*time.Minute)
	for _, n := range []*cluster.Node{n1, n2} {
		wireGuardLease(t, c, n)
		st, err := n.Status(ctx)
		if err != nil || st.Peers[0].Mode != "wireguard" {
			t.Fatalf("node %d status: %+v, %v", n.Index+1, st.Peers, err)
		}
	}
	a := addContainer(t, n1, "wga")
	b := addContainer(t, n2, "wgb")
	if out, err := a.Ping(ctx, b.IP, 3); err != nil {
		t.Fatalf("ping %s -> %s: %v\n%s", a.IP, b.IP, err, out)
	}
	if out, err := b.Ping(ctx, a.IP, 3); err != nil {
		t.Fatalf("ping %s -> %s: %v\n%s", b.IP, a.IP, err, out)
	}

	// 50 datagrams with a marker from a's container to b's, captured on
	// host 2's underlay: all arrive, none shows the marker.
	const port = 9999
	marker := []byte("WEFT-PLAINTEXT-MARKER-0123456789")
	payload := bytes.Repeat(marker, 8)
	stop := startCapture(t, n2.Host.NS, n2.Host.Dev, fmt.Sprintf("udp and src host %s", n1.Host.IP))
	wait := udpCounter(t, b.NS, netip.AddrPortFrom(b.IP, port), 4)
	self, _ := os.Executable()
	runIn(t, ctx, a.NS, "env", roleEnv+"=udpblast", self, netip.AddrPortFrom(b.IP, port).String(), "50", hex.EncodeToString(payload))
	if got := wait(); got != "received=50" {
		t.Fatalf("legitimate datagrams: %s, want received=50", got)
	}
	capture := stop()
	raw, err := os.ReadFile(capture)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, marker) || bytes.Contains(raw, b.IP.AsSlice()) && bytes.Contains(raw, []byte("WEFT-PLAINTEXT")) {
		t.Fatal("the container payload crossed the underlay in clear")
	}
	var recorded [][]byte
	for _, p := range pcapUDP(t, capture) {
		if netip.AddrFrom4([4]byte(p[12:16])) == n1.Host.IP && binary.BigEndian.Uint16(p[22:]) == wireGuardPort {
			recorded = append(recorded, p)
		}
	}
	if len(recorded) < 50 {
		t.Fatalf("captured %d datagrams of host 1 to port %d, want at least 50", len(recorded), wireGuardPort)
	}
	t.Logf("captured %d WireGuard datagrams of host 1 (%d bytes of pcap), no marker in clear", len(recorded), len(raw))

	// The attacker replays them three times with host 1's address, then
	// sends datagrams forged in weft's and WireGuard's formats.
	var forged []string
	for _, p := range recorded {
		forged = append(forged, hex.EncodeToString(p))
	}
	random := func(n int) []byte {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		return b
	}
	wgData := func() []byte { // type 4, reserved, receiver index, counter, "ciphertext"
		return append([]byte{4, 0, 0, 0}, random(12+16+64)...)
	}
	wgInit := append([]byte{1, 0, 0, 0}, random(144)...) // a handshake initiation of junk
	weft := append(weftHeader(1, 0, 0), ipv4UDP(a.IP, b.IP, port, payload)...)
	var fakes []string
	for _, p := range [][]byte{wgData(), wgData(), wgInit, weft, payload} {
		pkt := ipv4UDP(n1.Host.IP, n2.Host.IP, wireGuardPort, p)
		binary.BigEndian.PutUint16(pkt[20:], wireGuardPort) // from host 1's port
		fakes = append(fakes, hex.EncodeToString(pkt))
	}
	wait = udpCounter(t, b.NS, netip.AddrPortFrom(b.IP, port), 5)
	out := runIn(t, ctx, attacker.NS, "env", append([]string{roleEnv + "=rawsend", self, "3"}, forged...)...)
	t.Logf("replay: %s", strings.TrimSpace(out))
	out = runIn(t, ctx, attacker.NS, "env", append([]string{roleEnv + "=rawsend", self, "100"}, fakes...)...)
	t.Logf("forged: %s", strings.TrimSpace(out))
	if got := wait(); got != "received=0" {
		t.Errorf("replayed or forged datagrams reached the container: %s", got)
	}

	// The node stays ready and the pair keeps talking.
	st, err := n2.Status(ctx)
	if err != nil || st.Readiness.Status != "ready" {
		t.Errorf("node 2 after the attack: %+v, %v", st.Readiness, err)
	}
	if out, err := a.Ping(ctx, b.IP, 3); err != nil {
		t.Fatalf("ping after the attack: %v\n%s", err, out)
	}
	t.Logf("node 2 counters: %v", st.Counters["wireguard"])

	// Operators can look: Debian's wg shows node 1 as node 2's peer with
	// a handshake.
	show, err := exec.CommandContext(ctx, "wg", "show", n2.WireGuardName, "dump").CombinedOutput()
	if err != nil {
		t.Fatalf("wg show %s: %v\n%s", n2.WireGuardName, err, show)
	}
	if !strings.Contains(string(show), n1.Host.IP.String()+":51820") || !strings.Contains(string(show), nodeSubnet(t, n1).String()) {
		t.Errorf("wg show dump of node 2 lacks node 1:\n%s", show)
	}
}
