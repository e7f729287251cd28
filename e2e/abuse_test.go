//go:build !unit

package e2e

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
)

// Bad input and abuse: hostile datagrams on the UDP port, hostile content
// in etcd.

// ipv4UDP builds an IPv4 packet carrying a UDP datagram (checksum 0, as
// IPv4 allows) from src to dst:port.
func ipv4UDP(src, dst netip.Addr, port uint16, payload []byte) []byte {
	p := make([]byte, 20+8+len(payload))
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	p[8] = 64 // TTL
	p[9] = 17 // UDP
	s, d := src.As4(), dst.As4()
	copy(p[12:16], s[:])
	copy(p[16:20], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(p[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(p[10:], ^uint16(sum))
	binary.BigEndian.PutUint16(p[20:], 40000)
	binary.BigEndian.PutUint16(p[22:], port)
	binary.BigEndian.PutUint16(p[24:], uint16(8+len(payload)))
	copy(p[28:], payload)
	return p
}

// weftHeader is the wire header (overlay/wire.go): magic, version, type, flags.
func weftHeader(version, typ, flags byte) []byte { return []byte{0x77, version, typ, flags} }

// hostilePayload is one kind of datagram and the drop reason it must get.
type hostilePayload struct {
	name, reason string
	data         []byte
}

// hostilePayloads are sent from an address that holds no lease; inner
// packets aim at dst:port (a container of the receiving node).
func hostilePayloads(victimSrc, dst, unleased netip.Addr, port uint16) []hostilePayload {
	rng := rand.New(rand.NewPCG(1, 2))
	garbage := make([]byte, 200)
	for i := range garbage {
		garbage[i] = byte(rng.UintN(256))
	}
	garbage[0] = 0x45 // looks like bare IPv4, is not weft
	inner := ipv4UDP(victimSrc, dst, port, []byte("replayed"))
	oversized := append(weftHeader(1, 1, 0), ipv4UDP(victimSrc, dst, port, make([]byte, 8000))...)
	badLen := append(weftHeader(1, 1, 0), inner...)
	binary.BigEndian.PutUint16(badLen[4+2:], uint16(len(inner)+100))
	badIHL := append(weftHeader(1, 1, 0), inner...)
	badIHL[4] = 0x4f
	badIHL = badIHL[:4+40]
	ttl1 := append(weftHeader(1, 1, 0), ipv4UDP(victimSrc, dst, port, []byte("ttl"))...)
	ttl1[4+8] = 1
	return []hostilePayload{
		{"garbage", "bad_magic", garbage},
		{"empty", "too_short", []byte{}},
		{"truncated header", "too_short", []byte{0x77, 0x01}},
		{"wrong version", "bad_version", append(weftHeader(2, 1, 0), inner...)},
		{"unknown type", "unknown_type", append(weftHeader(1, 9, 0), inner...)},
		{"reserved bits", "reserved_bits", append(weftHeader(1, 1, 0x80), inner...)},
		{"inner not IPv4", "not_ipv4", append(weftHeader(1, 1, 0), 0x60, 0, 0, 0, 0, 0, 0, 0)},
		{"inner truncated", "truncated", append(weftHeader(1, 1, 0), inner[:12]...)},
		{"inner bad IHL", "bad_header_length", badIHL},
		{"inner length mismatch", "length_mismatch", badLen},
		{"oversized (fragmented) replay", "unknown_peer", oversized},
		{"replay of a peer's packet", "unknown_peer", append(weftHeader(1, 1, 0), inner...)},
		{"inner source in no lease", "unknown_peer", append(weftHeader(1, 1, 0), ipv4UDP(unleased, dst, port, []byte("x"))...)},
		{"inner source in the victim's own subnet", "unknown_peer", append(weftHeader(1, 1, 0), ipv4UDP(dst.Prev(), dst, port, []byte("x"))...)},
		{"TTL 1 from a non-peer", "unknown_peer", ttl1},
	}
}

// udpStats reads the kernel's UDP and IP reassembly counters in netns.
func udpStats(t *testing.T, netns *testbed.NS) map[string]int64 {
	t.Helper()
	out := runIn(t, ctxFor(t, 10*time.Second), netns, "cat", "/proc/net/snmp")
	stats := map[string]int64{}
	lines := strings.Split(out, "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) != len(values) || len(names) == 0 {
			continue
		}
		proto := strings.TrimSuffix(names[0], ":")
		for j := 1; j < len(names); j++ {
			v, _ := strconv.ParseInt(values[j], 10, 64)
			stats[proto+"."+names[j]] = v
		}
	}
	return stats
}

// 100k hostile datagrams at full rate from an address with no lease: none
// reaches a container, the daemon stays up and forwards a TCP transfer and
// pings meanwhile, and weft_drops_total accounts for every datagram the
// kernel handed it, by reason; with one queue and with --queues 2 (the
// drops of all sockets' workers add up).
func TestHostileDatagrams(t *testing.T) {
	t.Parallel()
	for _, queues := range []int{1, 2} {
		t.Run(fmt.Sprintf("queues=%d", queues), func(t *testing.T) { hostileDatagrams(t, queues) })
	}
}

func hostileDatagrams(t *testing.T, queues int) {
	const total = 100_000
	c := newCluster(t, 2, cluster.Options{Queues: queues})
	requireQueues(t, c, queues)
	attacker, victim := c.Nodes[0], c.Nodes[1]
	a := addContainer(t, attacker, "wa")
	b := addContainer(t, victim, "wb")
	ctx := ctxFor(t, 2*time.Minute)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}

	// A listener in the victim's container counts what arrives on the
	// port the replayed packets aim at.
	const port = 9999
	counter := b.NS.Command(ctx, "env", roleEnv+"=udpcount", self, netip.AddrPortFrom(b.IP, port).String(), "20")
	counterOut, err := counter.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := counter.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(counterOut)
	if !lines.Scan() || lines.Text() != "listening" {
		t.Fatalf("udpcount did not start: %q", lines.Text())
	}

	payloads := hostilePayloads(a.IP, b.IP, unleasedAddr(t, c), port)
	args := []string{roleEnv + "=udpblast", self, netip.AddrPortFrom(victim.Host.IP, 8285).String(), strconv.Itoa(total)}
	for _, p := range payloads {
		args = append(args, hex.EncodeToString(p.data))
	}
	before, kernelBefore := metrics(t, victim), udpStats(t, victim.Host.NS)
	waitPing := startPing(t, a.NS, b.IP, 20*time.Millisecond, 6*time.Second)
	// From the attacker's host namespace, on an ephemeral port: an
	// address (IP:port) that holds no lease.
	flood := attacker.Host.NS.Command(ctx, "env", args...)
	var floodOut strings.Builder
	flood.Stdout, flood.Stderr = &floodOut, &floodOut
	floodStart := time.Now()
	if err := flood.Start(); err != nil {
		t.Fatal(err)
	}
	transfer(t, a.NS, b.NS, b.IP.String(), 20<<20)
	if err := flood.Wait(); err != nil {
		t.Fatalf("udpblast: %v\n%s", err, floodOut.String())
	}
	t.Logf("flood: %s in %v", strings.TrimSpace(floodOut.String()), time.Since(floodStart).Round(time.Millisecond))
	sent, received := waitPing()
	t.Logf("ping during the flood: %d sent, %d received", sent, received)
	if received < sent*9/10 {
		t.Errorf("ping during the flood: %d of %d answered, want at least 90%%", received, sent)
	}

	// Every datagram is accounted for: dropped by weft with a reason, or
	// (if the socket overflowed, or a fragment went missing) by the kernel
	// before weft saw it.
	var after map[string]int64
	fams := metrics(t, victim)
	var weft float64
	var kernelDrops int64
	err = testbed.WaitFor(ctxFor(t, 20*time.Second), 200*time.Millisecond, func() error {
		fams = metrics(t, victim)
		after = udpStats(t, victim.Host.NS)
		weft = dropCount(fams, "rx", "") - dropCount(before, "rx", "")
		kernelDrops = after["Udp.RcvbufErrors"] - kernelBefore["Udp.RcvbufErrors"] +
			after["Ip.ReasmFails"] - kernelBefore["Ip.ReasmFails"]
		// The kernel's counters also count legitimate datagrams of the
		// concurrent transfer that overflowed the socket buffer, so the
		// sum may exceed what the attacker sent, never fall short of it.
		if weft+float64(kernelDrops) < total {
			return fmt.Errorf("%v dropped by weft + %v by the kernel < %d sent", weft, kernelDrops, total)
		}
		if weft > total {
			return fmt.Errorf("weft counted %v drops, more than the %d hostile datagrams: legitimate traffic dropped", weft, total)
		}
		return nil
	})
	t.Logf("victim: %v drops counted by weft (%s), %d dropped by the kernel (socket buffer, reassembly)",
		weft, describeDrops(fams), kernelDrops)
	if err != nil {
		t.Error(err)
	}
	perReason := map[string]float64{}
	for _, p := range payloads {
		perReason[p.reason] += float64(total / len(payloads))
	}
	for reason, want := range perReason {
		got := dropCount(fams, "rx", reason) - dropCount(before, "rx", reason)
		if got == 0 || (kernelDrops == 0 && got < want) {
			t.Errorf("drops{reason=%q}: %v, want about %v", reason, got, want)
		}
	}

	if !lines.Scan() {
		t.Fatalf("udpcount printed nothing: %v", lines.Err())
	}
	if got := lines.Text(); got != "received=0" {
		t.Errorf("the victim's container received hostile packets: %s", got)
	}
	counter.Wait()
	if _, err := victim.Status(ctx); err != nil {
		t.Fatalf("victim daemon after the flood: %v", err)
	}
	if out, err := a.Ping(ctx, b.IP, 3); err != nil {
		t.Fatalf("ping after the flood: %v\n%s", err, out)
	}
}

// Hostile etcd content: malformed, overlapping and foreign leases and a
// network config changed under the running daemons are logged and
// ignored; no daemon crashes or routes anything to a wrong host, and a
// daemon restarted on top of the junk comes back with its own subnet and
// only the real peer.
func TestHostileEtcdContent(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2, cluster.Options{})
	n1, n2 := c.Nodes[0], c.Nodes[1]
	a := addContainer(t, n1, "wa")
	b := addContainer(t, n2, "wb")
	cli := etcdClientIn(t, n1.Host.NS, c.EtcdEndpoint())
	ctx := ctxFor(t, 2*time.Minute)
	s1, s2 := nodeSubnet(t, n1), nodeSubnet(t, n2)
	want := map[*cluster.Node][]string{
		n1: {s2.String() + "=" + n2.Host.IP.String() + ":8285"},
		n2: {s1.String() + "=" + n1.Host.IP.String() + ":8285"},
	}
	free := netip.PrefixFrom(unleasedAddr(t, c), 24).Masked()
	b1 := s1.Addr().As4()
	prefix := "/weft/network/subnets/"
	junk := map[string]string{
		prefix + subnetKeyName(free):                     `{"PublicIP": "192.0.2.66", "BackendType": "udp", "BackendData": {"Port": 8285`,
		prefix + "garbage":                               leaseValue("192.0.2.66"),
		prefix + "10.244.0.0-8":                          leaseValue("192.0.2.66"),
		prefix + fmt.Sprintf("10.244.%d.0-23", b1[2]&^1): leaseValue("192.0.2.66"),
		prefix + fmt.Sprintf("10.244.%d.128-25", b1[2]):  leaseValue("192.0.2.66"),
		prefix + fmt.Sprintf("10.244.%d.1-24", b1[2]):    leaseValue("192.0.2.66"),
		prefix + "10.99.0.0-24":                          leaseValue("192.0.2.66"),
		prefix + "10.244.251.0-24":                       `{"PublicIP":"::1","BackendType":"udp","BackendData":{"Port":8285}}`,
		prefix + "10.244.252.0-24":                       `{"PublicIP":"192.0.2.66","BackendType":"udp","BackendData":{"Port":70000}}`,
		prefix + "10.244.253.0-24":                       `{"PublicIP":"192.0.2.66","BackendType":"vxlan","BackendData":{"VNI":1}}`,
		prefix + "10.244.254.0-24":                       `null`,
		"/weft/network/config":                           `{"Network":"10.99.0.0/16","SubnetLen":24,"Backend":{"Type":"udp","Port":9999}}`,
	}
	for k, v := range junk {
		if _, err := cli.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	// A garbled config after the changed one.
	if _, err := cli.Put(ctx, "/weft/network/config", `{"Network":`); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // let the watches deliver everything
	checkPeers := func(when string) {
		t.Helper()
		for _, n := range c.Nodes {
			st, err := n.Status(ctx)
			if err != nil {
				t.Fatalf("%s: node %d: %v\n%s", when, n.Index+1, err, n.Log(20))
			}
			var got []string
			for _, p := range st.Peers {
				got = append(got, p.Subnet+"="+p.Endpoint)
			}
			if !slices.Equal(got, want[n]) {
				t.Errorf("%s: node %d routes %q, want %q", when, n.Index+1, got, want[n])
			}
			code, body, err := readyz(ctx, n)
			if err != nil || code != http.StatusOK {
				t.Errorf("%s: node %d /readyz %d %s %v", when, n.Index+1, code, body, err)
			}
		}
		if out, err := a.Ping(ctx, b.IP, 2); err != nil {
			t.Errorf("%s: ping: %v\n%s", when, err, out)
		}
	}
	checkPeers("after the junk")
	for _, n := range c.Nodes {
		if log := n.Log(60); !strings.Contains(log, "ignoring") {
			t.Errorf("node %d did not log the junk it ignored:\n%s", n.Index+1, log)
		}
	}

	// A restart while the stored config is garbled: the node refuses to
	// come up (it retries and says why) until a valid config is back, then
	// it starts without another restart and reads the junk leases in its
	// first listing.
	if err := n2.Stop(syscall.SIGTERM, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := n2.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second)
	if !n2.ReadyAt().IsZero() {
		t.Fatalf("node 2 became ready on a garbled network config")
	}
	if log := n2.Log(10); !strings.Contains(log, "network config") {
		t.Errorf("node 2 does not say why it waits:\n%s", log)
	}
	if _, err := cli.Put(ctx, "/weft/network/config", cluster.DefaultNetworkConfig); err != nil {
		t.Fatal(err)
	}
	if err := n2.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if got := nodeSubnet(t, n2); got != s2 {
		t.Fatalf("node 2 came back with %s, want %s", got, s2)
	}
	time.Sleep(500 * time.Millisecond)
	checkPeers("after a restart on top of the junk")
}

// subnetKeyName renders a prefix as a lease key name (10.244.3.0-24).
func subnetKeyName(p netip.Prefix) string { return fmt.Sprintf("%s-%d", p.Addr(), p.Bits()) }
