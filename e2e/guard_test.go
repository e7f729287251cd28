//go:build !unit

package e2e

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
)

// forgedDatagram is a complete outer IPv4/UDP packet from src:8285 to
// dst:8285 carrying a weft datagram whose inner UDP packet goes from
// innerSrc to innerDst:port.
func forgedDatagram(src, dst, innerSrc, innerDst netip.Addr, port uint16) []byte {
	inner := append(weftHeader(1, 1, 0), ipv4UDP(innerSrc, innerDst, port, []byte("forged"))...)
	p := ipv4UDP(src, dst, 8285, inner)
	binary.BigEndian.PutUint16(p[20:], 8285) // source port: the peer's weft port
	return p
}

// startUDPCount runs the udpcount role on addr in ns for secs seconds and
// returns a function that waits for its count.
func startUDPCount(t *testing.T, ns *testbed.NS, addr netip.AddrPort, secs int) func() int {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := ns.Command(ctxFor(t, 2*time.Minute), "env", roleEnv+"=udpcount", self, addr.String(), strconv.Itoa(secs))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	if !lines.Scan() || lines.Text() != "listening" {
		t.Fatalf("udpcount on %v did not start: %q", addr, lines.Text())
	}
	return func() int {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("udpcount on %v printed nothing: %v", addr, lines.Err())
		}
		got := lines.Text()
		_ = cmd.Wait()
		n, err := strconv.Atoi(strings.TrimPrefix(got, "received="))
		if err != nil {
			t.Fatalf("udpcount on %v: %q", addr, got)
		}
		return n
	}
}

// rawSendIn sends each packet count times from ns with the rawsend role.
func rawSendIn(t *testing.T, ns *testbed.NS, count int, pkts ...[]byte) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		runIn(t, ctxFor(t, time.Minute), ns, "env", roleEnv+"=rawsend", self, strconv.Itoa(count), hex.EncodeToString(p))
	}
}

// Issue 11 item 1: a container with CAP_NET_RAW forges datagrams from a
// real peer's endpoint (host 3's 192.0.2.x:8285), to its own host and,
// routed through it, to another host. None may be delivered. The same
// datagrams sent by host 3 itself are delivered (so the forgeries were
// well-formed and only their origin stops them), and the guard counts what
// it dropped. Over udp and over wireguard (issue 19), where the forgeries
// are WireGuard datagrams to the ListenPort.
func TestContainerCannotPassAsNode(t *testing.T) {
	t.Run("udp", containerCannotPassAsNodeUDP)
	t.Run("wireguard", containerCannotPassAsNodeWireGuard)
}

func containerCannotPassAsNodeUDP(t *testing.T) {
	const count = 100
	c := newCluster(t, 3, cluster.Options{})
	h1, h2, h3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	attacker := addContainer(t, h1, "wx")
	neighbour := addContainer(t, h1, "wn")
	remote := addContainer(t, h2, "wr")
	peerSrc := nodeSubnet(t, h3).Addr().Next().Next() // a container address of host 3

	const controlPort, attackPort = 9998, 9999
	var counts []func() int
	for _, v := range []*cluster.Container{neighbour, remote} {
		counts = append(counts,
			startUDPCount(t, v.NS, netip.AddrPortFrom(v.IP, controlPort), 15),
			startUDPCount(t, v.NS, netip.AddrPortFrom(v.IP, attackPort), 15))
	}
	forged := func(port uint16) [][]byte {
		return [][]byte{
			forgedDatagram(h3.Host.IP, h1.Host.IP, peerSrc, neighbour.IP, port), // to its own host
			forgedDatagram(h3.Host.IP, h2.Host.IP, peerSrc, remote.IP, port),    // through it to another
		}
	}
	before := metrics(t, h1)
	// Control: host 3 sends them itself, from its real endpoint.
	rawSendIn(t, h3.Host.NS, count, forged(controlPort)...)
	// The attack: the same from the container on host 1.
	rawSendIn(t, attacker.NS, count, forged(attackPort)...)
	// And plain datagrams from the container to weft's port (its own
	// source): on its host (via the bridge address) and on another host.
	gw := nodeSubnet(t, h1).Addr().Next()
	rawSendIn(t, attacker.NS, count,
		forgedDatagram(attacker.IP, gw, attacker.IP, remote.IP, attackPort),
		forgedDatagram(attacker.IP, h2.Host.IP, attacker.IP, remote.IP, attackPort))

	got := make([]int, len(counts))
	for i, wait := range counts {
		got[i] = wait()
	}
	t.Logf("received: neighbour control=%d attack=%d; remote control=%d attack=%d", got[0], got[1], got[2], got[3])
	if got[1] != 0 || got[3] != 0 {
		t.Errorf("forged datagrams from a container were delivered: %d to the neighbour on its host, %d to the container on another host (want 0 of %d each)", got[1], got[3], count)
	}
	if got[0] == 0 || got[2] == 0 {
		t.Errorf("control: the same datagrams from the real peer were not delivered (%d, %d of %d): the test proves nothing", got[0], got[2], count)
	}
	after := metrics(t, h1)
	// The forged sources are stopped at the container's bridge port by the
	// policy's source check (the container is registered) before the
	// guard's subnet check sees them; either counts them.
	spoofed := guardDrops(after, "bridge_spoofed_source") - guardDrops(before, "bridge_spoofed_source") +
		counter(after, "weft_policy_drops_total", "spoofed-source") - counter(before, "weft_policy_drops_total", "spoofed-source")
	toPort := guardDrops(after, "bridge_to_weft_port") - guardDrops(before, "bridge_to_weft_port")
	t.Logf("host 1: forged sources dropped %v (guard bridge_spoofed_source + policy spoofed-source), to weft's port %v", spoofed, toPort)
	if spoofed < 2*count || toPort < 2*count {
		t.Errorf("drops of forged sources %v and of datagrams to weft's port %v, want at least %d each", spoofed, toPort, 2*count)
	}
	// Containers still reach each other (the guard drops only forgeries).
	if out, err := attacker.Ping(ctxFor(t, 30*time.Second), remote.IP, 3); err != nil {
		t.Fatalf("ping container to container after the attack: %v\n%s", err, out)
	}
	if out, err := attacker.Ping(ctxFor(t, 30*time.Second), neighbour.IP, 3); err != nil {
		t.Fatalf("ping to the neighbour after the attack: %v\n%s", err, out)
	}
}

// guardDrops reads weft_guard_drops_total{reason} (0 when absent).
func guardDrops(fams map[string]*dto.MetricFamily, reason string) float64 {
	for _, m := range fams["weft_guard_drops_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "reason" && l.GetValue() == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// The wireguard variant: a container with CAP_NET_RAW forges WireGuard
// handshake initiations (right type and size, a MAC no key opens) from
// host 3's endpoint (192.0.2.x:51820) to its own host and, routed through
// it, to host 2; then sends them from its own address to the ListenPort of
// both. WireGuard would refuse them anyway; the guard must stop them before
// the device sees them at all (a forged source is how an attacker aims
// cookie replies and rate limits at a real node). Control: host 3 sends the
// same datagrams itself and both devices count them (invalid_mac1), so the
// forgeries were well-formed and only their origin stops them. Last, the
// container cannot use the UAPI socket: it is 0600 root's, and weftd's
// device is not reachable from a container's uid.
func containerCannotPassAsNodeWireGuard(t *testing.T) {
	const count = 100
	c := newCluster(t, 3, cluster.Options{NetworkConfig: wireGuardConfig})
	h1, h2, h3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	attacker := addContainer(t, h1, "wx")
	remote := addContainer(t, h2, "wr")
	initiation := func(src, dst netip.Addr) []byte {
		junk := make([]byte, 144)
		_, _ = rand.Read(junk)
		p := ipv4UDP(src, dst, wireGuardPort, append([]byte{1, 0, 0, 0}, junk...))
		binary.BigEndian.PutUint16(p[20:], wireGuardPort) // from the node's port
		return p
	}
	forged := [][]byte{initiation(h3.Host.IP, h1.Host.IP), initiation(h3.Host.IP, h2.Host.IP)}
	invalid := func() [2]float64 {
		return [2]float64{wgEvent(metrics(t, h1), "invalid_mac1"), wgEvent(metrics(t, h2), "invalid_mac1")}
	}
	// waitGrowth waits until both devices counted at least want more
	// invalid MACs than in from (or 15 s) and returns the growth.
	waitGrowth := func(from [2]float64, want float64) [2]float64 {
		var d [2]float64
		_ = testbed.WaitFor(ctxFor(t, 15*time.Second), 100*time.Millisecond, func() error {
			now := invalid()
			d = [2]float64{now[0] - from[0], now[1] - from[1]}
			if d[0] < want || d[1] < want {
				return errors.New("not yet")
			}
			return nil
		})
		return d
	}

	// The attack first (nothing may reach either device), then the control.
	before := metrics(t, h1)
	start := invalid()
	rawSendIn(t, attacker.NS, count, forged...)
	gw := nodeSubnet(t, h1).Addr().Next()
	rawSendIn(t, attacker.NS, count, initiation(attacker.IP, gw), initiation(attacker.IP, h2.Host.IP))
	time.Sleep(2 * time.Second) // the handshake workers have long seen whatever came
	attack := waitGrowth(start, 0)
	after := metrics(t, h1)
	spoofed := guardDrops(after, "bridge_spoofed_source") - guardDrops(before, "bridge_spoofed_source") +
		counter(after, "weft_policy_drops_total", "spoofed-source") - counter(before, "weft_policy_drops_total", "spoofed-source")
	toPort := guardDrops(after, "bridge_to_weft_port") - guardDrops(before, "bridge_to_weft_port")

	mid := invalid()
	rawSendIn(t, h3.Host.NS, count, forged...)
	control := waitGrowth(mid, count/2)
	t.Logf("WireGuard invalid_mac1 on host 1 / host 2: from the container %v / %v, from host 3 itself %v / %v (of %d each); host 1's guard: forged sources dropped %v, to the WireGuard port %v",
		attack[0], attack[1], control[0], control[1], count, spoofed, toPort)
	if attack[0] != 0 || attack[1] != 0 {
		t.Errorf("WireGuard datagrams from a container reached the devices: %v on its own host, %v on another (want 0)", attack[0], attack[1])
	}
	if control[0] < count/2 || control[1] < count/2 {
		t.Errorf("control: host 3's own datagrams were counted %v / %v times of %d: the test proves nothing", control[0], control[1], count)
	}
	if spoofed < 2*count || toPort < 2*count {
		t.Errorf("drops of forged sources %v and of datagrams to the WireGuard port %v, want at least %d each", spoofed, toPort, 2*count)
	}

	// The UAPI socket: root's alone; a container's uid cannot configure
	// (or read) the device.
	sock := "/var/run/wireguard/" + h1.WireGuardName + ".sock"
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("UAPI socket %s has mode %v, want a socket only its owner can use", sock, fi.Mode())
	}
	ctx := ctxFor(t, time.Minute)
	if out, err := attacker.NS.Run(ctx, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "wg", "show", h1.WireGuardName); err == nil {
		t.Errorf("a container's uid read the device through its UAPI socket:\n%s", out)
	}
	if out, err := attacker.NS.Run(ctx, "wg", "show", h1.WireGuardName); err != nil {
		t.Errorf("control: root cannot read the device through %s: %v\n%s", sock, err, out)
	}

	// Containers still reach each other.
	if out, err := attacker.Ping(ctx, remote.IP, 3); err != nil {
		t.Fatalf("ping container to container after the attack: %v\n%s", err, out)
	}
}

// wgEvent reads weft_wireguard_events_total{event} (0 when absent).
func wgEvent(fams map[string]*dto.MetricFamily, event string) float64 {
	for _, m := range fams["weft_wireguard_events_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "event" && l.GetValue() == event {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
