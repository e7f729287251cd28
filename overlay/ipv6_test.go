package overlay

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

var (
	testNetwork6 = netip.MustParsePrefix("fd10:244::/56")
	testLocal6   = netip.MustParsePrefix("fd10:244:0:1::/64")
	testPeerNet6 = netip.MustParsePrefix("fd10:244:0:2::/64")
	testOther6   = netip.MustParsePrefix("fd10:244:0:3::/64")
)

// newDualTable is newTestTable with IPv6: testPeerEP leases testPeerNet
// and testPeerNet6, testOtherEP 10.244.3.0/24 and testOther6.
func newDualTable(t testing.TB) *PeerTable {
	t.Helper()
	tab, err := NewPeerTableFor(TableConfig{Network: testNetwork, SubnetLen: 24, IPv6Network: testNetwork6, IPv6SubnetLen: 64})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []Peer{
		{Subnet: testPeerNet, IPv6Subnet: testPeerNet6, Endpoint: testPeerEP},
		{Subnet: netip.MustParsePrefix("10.244.3.0/24"), IPv6Subnet: testOther6, Endpoint: testOtherEP},
	} {
		if err := tab.Set(p); err != nil {
			t.Fatal(err)
		}
	}
	return tab
}

// putIPv6 writes an IPv6 packet of total length n with next header nh into b.
func putIPv6(b []byte, n int, src, dst string, hop, nh byte) []byte {
	p := b[:n]
	clear(p)
	binary.BigEndian.PutUint32(p, 6<<28)
	binary.BigEndian.PutUint16(p[ipv6PayloadLenOff:], uint16(n-ipv6HeaderLen))
	p[ipv6NextHeaderOff], p[ipv6HopLimitOff] = nh, hop
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(p[ipv6SrcOffset:], s[:])
	copy(p[ipv6DstOffset:], d[:])
	for i := ipv6HeaderLen; i < n; i++ {
		p[i] = byte(i)
	}
	return p
}

func datagram6(n int, src, dst string, hop byte) []byte {
	d := make([]byte, HeaderLen+n)
	putHeader(d)
	putIPv6(d[HeaderLen:], n, src, dst, hop, protoUDP)
	return d
}

func TestNewPeerTableIPv6Limits(t *testing.T) {
	for _, c := range []TableConfig{
		{IPv6Network: netip.MustParsePrefix("fd00::/32"), IPv6SubnetLen: 64},  // 2^32 slots
		{IPv6Network: netip.MustParsePrefix("fd00::/64"), IPv6SubnetLen: 56},  // shorter than the network
		{IPv6Network: netip.MustParsePrefix("10.0.0.0/8"), IPv6SubnetLen: 24}, // not IPv6
		{IPv6Network: netip.MustParsePrefix("fd00::/64"), IPv6SubnetLen: 129},
		{},
	} {
		if _, err := NewPeerTableFor(c); err == nil {
			t.Fatalf("%+v accepted", c)
		}
	}
	if _, err := NewPeerTableFor(TableConfig{IPv6Network: netip.MustParsePrefix("fd00::/44"), IPv6SubnetLen: 64}); err != nil {
		t.Fatalf("2^20 IPv6 slots refused: %v", err)
	}
}

func TestPeerTableIPv6IndexMath(t *testing.T) {
	for _, c := range []struct {
		network         string
		subnetLen       int
		slots           int
		first, last     string // the first and last subnets
		inLast, outside string
	}{
		{"fd10:244::/56", 64, 256, "fd10:244::/64", "fd10:244:0:ff::/64", "fd10:244:0:ff:ffff:ffff:ffff:ffff", "fd10:244:0:100::"},
		{"fd10:244::/48", 64, 65536, "fd10:244::/64", "fd10:244:0:ffff::/64", "fd10:244:0:ffff::1", "fd10:245::"},
		// subnets longer than /64: the index straddles the two halves
		{"fd00:1:2:3:10::/76", 88, 4096, "fd00:1:2:3:10::/88", "fd00:1:2:3:1f:ff00::/88", "fd00:1:2:3:1f:ff12::1", "fd00:1:2:3:20::"},
		{"fd00::1:0/112", 128, 65536, "fd00::1:0/128", "fd00::1:ffff/128", "fd00::1:ffff", "fd00::2:0"},
	} {
		tab, err := NewPeerTableFor(TableConfig{IPv6Network: netip.MustParsePrefix(c.network), IPv6SubnetLen: c.subnetLen})
		if err != nil {
			t.Fatal(err)
		}
		if len(tab.v6.slots) != c.slots {
			t.Fatalf("%s /%d: %d slots, want %d", c.network, c.subnetLen, len(tab.v6.slots), c.slots)
		}
		first := Peer{IPv6Subnet: netip.MustParsePrefix(c.first), Endpoint: netip.MustParseAddrPort("[2001:db8::10]:8285")}
		last := Peer{IPv6Subnet: netip.MustParsePrefix(c.last), Endpoint: netip.MustParseAddrPort("[2001:db8::11]:8285")}
		for _, p := range []Peer{first, last} {
			if err := tab.Set(p); err != nil {
				t.Fatal(err)
			}
		}
		if got := tab.Lookup(first.IPv6Subnet.Addr()); got == nil || *got != first {
			t.Fatalf("%s: Lookup(first) = %v", c.network, got)
		}
		if got := tab.Lookup(netip.MustParseAddr(c.inLast)); got == nil || *got != last {
			t.Fatalf("%s: Lookup(%s) = %v", c.network, c.inLast, got)
		}
		if i, _ := tab.v6.index(addrToUint128(last.IPv6Subnet.Addr())); int(i) != c.slots-1 {
			t.Fatalf("%s: last subnet in slot %d", c.network, i)
		}
		if tab.Lookup(netip.MustParseAddr(c.outside)) != nil || tab.Lookup(netip.MustParseAddr("10.244.2.1")) != nil {
			t.Fatalf("%s: lookup outside the network found a peer", c.network)
		}
		if len(tab.Peers()) != 2 {
			t.Fatalf("Peers() = %v", tab.Peers())
		}
	}
}

func TestPeerTableDualStack(t *testing.T) {
	tab := newDualTable(t)
	p4, p6 := tab.Lookup(netip.MustParseAddr("10.244.2.7")), tab.Lookup(netip.MustParseAddr("fd10:244:0:2::7"))
	if p4 == nil || p4 != p6 || p4.Endpoint != testPeerEP {
		t.Fatalf("dual peer: %v %v", p4, p6)
	}
	// The lease moves to another IPv6 subnet: the old one goes.
	moved := netip.MustParsePrefix("fd10:244:0:9::/64")
	if err := tab.Set(Peer{Subnet: testPeerNet, IPv6Subnet: moved, Endpoint: testPeerEP}); err != nil {
		t.Fatal(err)
	}
	if tab.Lookup(netip.MustParseAddr("fd10:244:0:2::7")) != nil || tab.Lookup(netip.MustParseAddr("fd10:244:0:9::7")) == nil {
		t.Fatal("IPv6 slot not moved with the lease")
	}
	// Removing by the IPv6 subnet removes the IPv4 slot too, and the endpoint.
	tab.Remove(moved)
	if tab.Lookup(netip.MustParseAddr("10.244.2.7")) != nil || tab.knownEndpoint(testPeerEP) {
		t.Fatal("Remove(IPv6 subnet) left the peer")
	}
	// A peer taking a subnet another peer held replaces that peer wholly.
	ep := netip.MustParseAddrPort("[2001:db8::9]:8285")
	if err := tab.Set(Peer{IPv6Subnet: testOther6, Endpoint: ep}); err != nil {
		t.Fatal(err)
	}
	if tab.Lookup(netip.MustParseAddr("10.244.3.1")) != nil || tab.knownEndpoint(testOtherEP) || !tab.knownEndpoint(ep) {
		t.Fatal("the replaced peer's IPv4 slot or endpoint stayed")
	}
	// Reset: dual, IPv6-only, and a later duplicate replacing an earlier one.
	want := []Peer{
		{Subnet: netip.MustParsePrefix("10.244.5.0/24"), IPv6Subnet: netip.MustParsePrefix("fd10:244:0:5::/64"), Endpoint: netip.MustParseAddrPort("192.0.2.5:8285")},
		{IPv6Subnet: netip.MustParsePrefix("fd10:244:0:6::/64"), Endpoint: netip.MustParseAddrPort("[2001:db8::6]:8285")},
	}
	dup := Peer{Subnet: netip.MustParsePrefix("10.244.7.0/24"), IPv6Subnet: netip.MustParsePrefix("fd10:244:0:6::/64"), Endpoint: netip.MustParseAddrPort("192.0.2.7:8285")}
	if err := tab.ResetChecked([]Peer{want[0], dup, want[1], {IPv6Subnet: netip.MustParsePrefix("fd10:245::/64"), Endpoint: ep}}); err == nil {
		t.Fatal("ResetChecked accepted a subnet outside the IPv6 network")
	}
	got := tab.Peers()
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("Peers() = %v", got)
	}
	if tab.Lookup(netip.MustParseAddr("10.244.7.1")) != nil || tab.knownEndpoint(dup.Endpoint) {
		t.Fatal("the replaced duplicate kept its IPv4 slot or endpoint")
	}
	if !tab.knownEndpoint(want[1].Endpoint) || tab.knownEndpoint(ep) {
		t.Fatal("endpoint index not rebuilt by Reset")
	}
}

// The known-sender check works for IPv6 endpoints and their source ports,
// without allocating.
func TestKnownSenderIPv6(t *testing.T) {
	tab, _ := NewPeerTableFor(TableConfig{Network: testNetwork, SubnetLen: 24, IPv6Network: testNetwork6, IPv6SubnetLen: 64})
	ep := netip.MustParseAddrPort("[2001:db8::2]:8285")
	if err := tab.Set(Peer{Subnet: testPeerNet, IPv6Subnet: testPeerNet6, Endpoint: ep}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		src  string
		want bool
	}{
		{"[2001:db8::2]:8285", true}, {"[2001:db8::2]:8292", true}, {"[2001:db8::2]:8293", false},
		{"[2001:db8::2]:8284", false}, {"[2001:db8::3]:8285", false}, {"192.0.2.2:8285", false},
	} {
		if got := tab.knownSender(netip.MustParseAddrPort(c.src), DefaultSourcePorts); got != c.want {
			t.Errorf("knownSender(%s) = %v", c.src, got)
		}
	}
	src := netip.MustParseAddrPort("[2001:db8::2]:8290")
	if a := testing.AllocsPerRun(100, func() { tab.knownSender(src, DefaultSourcePorts) }); a != 0 {
		t.Fatalf("knownSender allocates %.1f", a)
	}
}

func newDualTX(t testing.TB) (*txPath, *captureWriter) {
	w := &captureWriter{}
	return newTXPath(newDualTable(t), 1400, DefaultSourcePorts, newICMPResponder(w)), w
}

func TestEncapIPv6(t *testing.T) {
	p, w := newDualTX(t)
	load := func(i, n int, dst string) {
		putIPv6(p.bufs[i][bufOffset:], n, "fd10:244:0:1::5", dst, 64, protoUDP)
		p.sizes[i] = n
	}
	load(0, 100, "fd10:244:0:2::9")  // to peer
	load(1, 100, "fd10:244:0:3::9")  // to the other peer
	load(2, 100, "fd10:244:0:99::1") // unleased: ICMPv6 no route
	load(3, 100, "2001:db8::8")      // outside the network
	load(4, 1401, "fd10:244:0:2::9") // too big: Packet Too Big
	load(5, 1400, "fd10:244:0:2::9") // exactly the MTU
	putIPv4(p.bufs[6][bufOffset:], 100, "10.244.1.5", "10.244.2.9", 64)
	p.sizes[6] = 100
	p.bufs[7][bufOffset] = 0x50 // version 5
	p.sizes[7] = 40
	load(8, 39, "fd10:244:0:2::9")
	p.bufs[8][bufOffset] = 0x60 // 39 bytes: truncated
	out := p.encapBatch(9)
	if out != 4 {
		t.Fatalf("encapBatch sent %d, want 4", out)
	}
	if p.dsts[0] != testPeerEP || p.dsts[1] != testOtherEP || p.dsts[2] != testPeerEP || p.dsts[3] != testPeerEP {
		t.Fatalf("destinations %v", p.dsts[:4])
	}
	if &p.pkts[0][HeaderLen] != &p.bufs[0][bufOffset] || len(p.pkts[0]) != HeaderLen+100 {
		t.Fatal("datagram is not a view of the TUN buffer")
	}
	d := p.tally.drops
	if d[DropNoPeer] != 1 || d[DropOutsideNetwork] != 1 || d[DropTooBig] != 1 || d[DropNotIP] != 1 || d[DropTruncated] != 1 {
		t.Fatalf("drops %v", d)
	}
	if w.writes != 2 {
		t.Fatalf("ICMPv6 writes = %d, want 2", w.writes)
	}
	// The last error is the Packet Too Big with the TUN's MTU, from the
	// destination subnet's address, with a checksum that verifies.
	e := w.last
	if e[0]>>4 != 6 || e[ipv6NextHeaderOff] != protoICMPv6 || e[ipv6HeaderLen] != icmpv6TypePacketTooBig ||
		binary.BigEndian.Uint32(e[ipv6HeaderLen+4:]) != 1400 {
		t.Fatalf("Packet Too Big % x", e[:48])
	}
	if netip.AddrFrom16([16]byte(e[8:24])) != netip.MustParseAddr("fd10:244:0:2::") ||
		netip.AddrFrom16([16]byte(e[24:40])) != netip.MustParseAddr("fd10:244:0:1::5") {
		t.Fatal("Packet Too Big addresses")
	}
	if !icmpv6ChecksumOK(e) || len(e) != icmpv6MaxPacket {
		t.Fatalf("Packet Too Big checksum or length (%d)", len(e))
	}
	// A network without IPv6 counts IPv6 packets as not_ipv4, as before.
	p4, _ := newTestTX(t)
	putIPv6(p4.bufs[0][bufOffset:], 100, "fd10:244:0:1::5", "fd10:244:0:2::9", 64, protoUDP)
	p4.sizes[0] = 100
	if p4.encapBatch(1) != 0 || p4.tally.drops[DropNotIPv4] != 1 {
		t.Fatal("IPv6 on an IPv4-only network not counted as not_ipv4")
	}
}

// icmpv6ChecksumOK verifies the ICMPv6 checksum of the IPv6 packet p.
func icmpv6ChecksumOK(p []byte) bool {
	l4 := len(p) - ipv6HeaderLen
	b := make([]byte, 40+l4)
	copy(b, p[8:40])
	binary.BigEndian.PutUint32(b[32:], uint32(l4))
	b[39] = protoICMPv6
	copy(b[40:], p[40:])
	return checksum(b) == 0
}

func TestBuildICMPv6Error(t *testing.T) {
	orig := putIPv6(make([]byte, 100), 100, "fd10:244:0:1::5", "fd10:244:0:99::1", 64, protoTCP)
	hi, lo := addrToUint128(netip.MustParseAddr("fd10:244:0:99::"))
	out := make([]byte, icmpv6MaxPacket)
	n := buildICMPv6Error(out, icmpv6TypeDestUnreach, icmpv6CodeNoRoute, 0, hi, lo, orig)
	if n != 148 || !icmpv6ChecksumOK(out[:n]) || checkInnerIPv6(out[:n]) != notDropped {
		t.Fatalf("n=%d", n)
	}
	if out[40] != 1 || out[41] != 0 || string(out[48:n]) != string(orig) {
		t.Fatal("type, code or quote wrong")
	}
	for name, bad := range map[string][]byte{
		"icmpv6 error":   putIPv6(make([]byte, 60), 60, "fd10:244:0:1::5", "fd10:244:0:99::1", 64, protoICMPv6),
		"multicast src":  putIPv6(make([]byte, 60), 60, "ff02::1", "fd10:244:0:99::1", 64, protoUDP),
		"unspecified":    putIPv6(make([]byte, 60), 60, "::", "fd10:244:0:99::1", 64, protoUDP),
		"short":          orig[:39],
		"ipv4":           putIPv4(make([]byte, 60), 60, "10.244.1.5", "10.244.99.1", 64),
		"icmpv6 no type": putIPv6(make([]byte, 40), 40, "fd10:244:0:1::5", "fd10:244:0:99::1", 64, protoICMPv6),
	} {
		if name == "icmpv6 error" {
			bad[40] = 1 // destination unreachable
		}
		if buildICMPv6Error(out, icmpv6TypeDestUnreach, 0, 0, hi, lo, bad) != 0 {
			t.Errorf("%s answered", name)
		}
	}
	// An echo request (an informational message) gets its error.
	echo := putIPv6(make([]byte, 60), 60, "fd10:244:0:1::5", "fd10:244:0:99::1", 64, protoICMPv6)
	echo[40] = 128
	if buildICMPv6Error(out, icmpv6TypeDestUnreach, 0, 0, hi, lo, echo) == 0 {
		t.Error("echo request not answered")
	}
}

func TestDecapIPv6Checks(t *testing.T) {
	tab := newDualTable(t)
	p := newRXPath(tab, testLocal, testLocal6, DefaultSourcePorts)
	good := func() []byte { return datagram6(100, "fd10:244:0:2::5", "fd10:244:0:1::9", 64) }
	mutate := func(f func([]byte)) []byte { d := good(); f(d); return d }
	peer6EP := netip.MustParseAddrPort("[2001:db8::2]:8285")
	cases := []struct {
		name string
		d    []byte
		src  netip.AddrPort
		want DropReason
	}{
		{"good", good(), testPeerEP, notDropped},
		{"good from another source port", good(), netip.AddrPortFrom(testPeerEP.Addr(), 8290), notDropped},
		{"unknown sender", good(), netip.MustParseAddrPort("192.0.2.99:8285"), DropUnknownPeer},
		{"other peer's subnet", datagram6(100, "fd10:244:0:3::5", "fd10:244:0:1::9", 64), testPeerEP, DropSpoofedInnerSource},
		{"source outside", datagram6(100, "2001:db8::66", "fd10:244:0:1::9", 64), testPeerEP, DropSpoofedInnerSource},
		{"peer's IPv4 as IPv6 source", datagram6(100, "::ffff:192.0.2.2", "fd10:244:0:1::9", 64), testPeerEP, DropSpoofedInnerSource},
		{"wrong destination", datagram6(100, "fd10:244:0:2::5", "fd10:244:0:4::9", 64), testPeerEP, DropWrongDestination},
		{"hop limit 1", datagram6(100, "fd10:244:0:2::5", "fd10:244:0:1::9", 1), testPeerEP, DropTTLExpired},
		{"truncated", good()[:HeaderLen+39], testPeerEP, DropTruncated},
		{"length mismatch", good()[:HeaderLen+99], testPeerEP, DropLengthMismatch},
		{"hop-by-hop", mutate(func(d []byte) { d[HeaderLen+ipv6NextHeaderOff] = protoHopByHop }), testPeerEP, DropIPOptions},
		{"routing header", mutate(func(d []byte) { d[HeaderLen+ipv6NextHeaderOff] = protoIPv6Routing }), testPeerEP, DropIPOptions},
		{"partial flag on UDP", mutate(func(d []byte) { d[3] = flagL4Partial }), testPeerEP, DropReservedBits},
		{"version 5", mutate(func(d []byte) { d[HeaderLen] = 0x50 }), testPeerEP, DropNotIP},
		{"IPv6 underlay: peer host", datagram6(100, "2001:db8::2", "fd10:244:0:1::9", 64), peer6EP, DropUnknownPeer},
	}
	for _, c := range cases {
		d := append([]byte(nil), c.d...)
		if _, r := p.decap(d, c.src); r != c.want {
			t.Errorf("%s: %v, want %v", c.name, r, c.want)
		}
	}
	d := good()
	if n, r := p.decap(d, testPeerEP); r != notDropped || n != 100 || d[HeaderLen+ipv6HopLimitOff] != 63 {
		t.Fatalf("good: n=%d %v hop %d", n, r, d[HeaderLen+ipv6HopLimitOff])
	}
	// Over an IPv6 underlay: the peer's host (inner source = its endpoint
	// address) is accepted, as an IPv4 peer's PublicIP is.
	tab6, _ := NewPeerTableFor(TableConfig{IPv6Network: testNetwork6, IPv6SubnetLen: 64})
	if err := tab6.Set(Peer{IPv6Subnet: testPeerNet6, Endpoint: peer6EP}); err != nil {
		t.Fatal(err)
	}
	p6 := newRXPath(tab6, netip.Prefix{}, testLocal6, DefaultSourcePorts)
	for _, c := range []struct {
		d    []byte
		src  netip.AddrPort
		want DropReason
	}{
		{good(), peer6EP, notDropped},
		{datagram6(100, "2001:db8::2", "fd10:244:0:1::9", 64), peer6EP, notDropped},
		{datagram6(100, "2001:db8::3", "fd10:244:0:1::9", 64), peer6EP, DropSpoofedInnerSource},
		{good(), testPeerEP, DropUnknownPeer},
		{datagram(60, "10.244.2.5", "10.244.1.9", 64), peer6EP, DropNotIP}, // IPv4 on an IPv6-only network
	} {
		if _, r := p6.decap(c.d, c.src); r != c.want {
			t.Errorf("IPv6-only network, %v from %v: %v, want %v", c.d[HeaderLen:HeaderLen+1], c.src, r, c.want)
		}
	}
}

func TestFlowBucketIPv6(t *testing.T) {
	pkt := func(sport uint16) []byte {
		p := putIPv6(make([]byte, 80), 80, "fd10:244:0:1::5", "fd10:244:0:2::9", 64, protoTCP)
		binary.BigEndian.PutUint16(p[40:], sport)
		binary.BigEndian.PutUint16(p[42:], 5201)
		return p
	}
	seen := map[uint8]bool{}
	for sport := uint16(40000); sport < 40064; sport++ {
		b := flowBucket(pkt(sport), DefaultSourcePorts)
		if b >= DefaultSourcePorts || flowBucket(pkt(sport), DefaultSourcePorts) != b {
			t.Fatal("bucket out of range or not stable")
		}
		p := pkt(sport)
		binary.BigEndian.PutUint32(p, 6<<28|0xabcde) // another flow label: same flow
		if flowBucket(p, DefaultSourcePorts) != b {
			t.Fatal("the flow label moved the flow")
		}
		seen[b] = true
	}
	if len(seen) < DefaultSourcePorts-1 {
		t.Fatalf("64 IPv6 flows used %d of %d buckets", len(seen), DefaultSourcePorts)
	}
}

func TestIPv6ZeroAllocs(t *testing.T) {
	tx, _ := newDualTX(t)
	for i := range batchSize {
		putIPv6(tx.bufs[i][bufOffset:], 1400, "fd10:244:0:1::5", "fd10:244:0:2::9", 64, protoTCP)
		tx.sizes[i] = 1400
	}
	putIPv6(tx.bufs[7][bufOffset:], 100, "fd10:244:0:1::5", "fd10:244:0:99::1", 64, protoUDP) // ICMPv6 path
	tx.sizes[7] = 100
	if a := testing.AllocsPerRun(100, func() {
		if tx.encapBatch(batchSize) != batchSize-1 {
			panic("unexpected drops")
		}
	}); a != 0 {
		t.Fatalf("IPv6 encapBatch allocates %.1f times per batch", a)
	}
	rx := newRXPath(newDualTable(t), testLocal, testLocal6, DefaultSourcePorts)
	fill := func(src string, from netip.AddrPort) {
		for i := range batchSize {
			putHeader(rx.bufs[i])
			putIPv6(rx.bufs[i][HeaderLen:], 1400, src, "fd10:244:0:1::9", 64, protoTCP)
			rx.views[i] = rx.bufs[i][:HeaderLen+1400]
			rx.srcs[i] = from
		}
	}
	if a := testing.AllocsPerRun(100, func() {
		fill("fd10:244:0:2::5", testPeerEP)
		if rx.decapBatch(batchSize) != batchSize {
			panic("unexpected drops")
		}
	}); a != 0 {
		t.Fatalf("IPv6 decapBatch allocates %.1f times per batch", a)
	}
	if a := testing.AllocsPerRun(100, func() {
		fill("fd10:244:0:3::5", testPeerEP) // spoofed: the drop path
		if rx.decapBatch(batchSize) != 0 {
			panic("spoofed packets passed")
		}
	}); a != 0 {
		t.Fatalf("IPv6 decapBatch drop path allocates %.1f times per batch", a)
	}
}

func BenchmarkLookupIPv6(b *testing.B) {
	tab := newDualTable(b)
	hi, lo := addrToUint128(netip.MustParseAddr("fd10:244:0:2::9"))
	b.ReportAllocs()
	var hits int
	for b.Loop() {
		if tab.LookupIPv6(hi, lo) != nil {
			hits++
		}
	}
	if hits == 0 {
		b.Fatal("no hits")
	}
}

func BenchmarkEncapIPv6(b *testing.B) {
	p, _ := newDualTX(b)
	for i := range batchSize {
		putIPv6(p.bufs[i][bufOffset:], 1400, "fd10:244:0:1::5", "fd10:244:0:2::9", 64, protoTCP)
		p.sizes[i] = 1400
	}
	b.ReportAllocs()
	b.SetBytes(batchSize * 1400)
	for b.Loop() {
		p.encapBatch(batchSize)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batchSize), "ns/pkt")
}

func BenchmarkDecapIPv6(b *testing.B) {
	p := newRXPath(newDualTable(b), testLocal, testLocal6, DefaultSourcePorts)
	for i := range batchSize {
		putHeader(p.bufs[i])
		putIPv6(p.bufs[i][HeaderLen:], 1400, "fd10:244:0:2::5", "fd10:244:0:1::9", 255, protoTCP)
		p.views[i] = p.bufs[i][:HeaderLen+1400]
		p.srcs[i] = testPeerEP
	}
	b.ReportAllocs()
	b.SetBytes(batchSize * 1400)
	for b.Loop() {
		for i := range batchSize {
			p.views[i][HeaderLen+ipv6HopLimitOff] = 255
		}
		p.decapBatch(batchSize)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batchSize), "ns/pkt")
}
