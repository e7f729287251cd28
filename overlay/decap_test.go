package overlay

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

func TestDecapChecks(t *testing.T) {
	tab := newTestTable(t)
	p := newRXPath(tab, testLocal, netip.Prefix{}, DefaultSourcePorts)
	good := func() []byte { return datagram(60, "10.244.2.5", "10.244.1.9", 64) }
	mutate := func(f func(d []byte)) []byte { d := good(); f(d); return d }
	tests := []struct {
		name string
		d    []byte
		src  netip.AddrPort
		want DropReason
	}{
		{"valid", good(), testPeerEP, notDropped},
		{"too short", []byte{headerMagic, headerVersion}, testPeerEP, DropTooShort},
		{"bad magic", mutate(func(d []byte) { d[0] = 0x45 }), testPeerEP, DropBadMagic},
		{"bad version", mutate(func(d []byte) { d[1] = 9 }), testPeerEP, DropBadVersion},
		{"unknown type", mutate(func(d []byte) { d[2] = 7 }), testPeerEP, DropUnknownType},
		{"reserved bits", mutate(func(d []byte) { d[3] = 1 }), testPeerEP, DropReservedBits},
		{"inner ipv6", mutate(func(d []byte) { d[HeaderLen] = 0x60 }), testPeerEP, DropNotIPv4},
		{"inner empty", good()[:HeaderLen], testPeerEP, DropNotIPv4},
		{"inner truncated", good()[:HeaderLen+12], testPeerEP, DropTruncated},
		{"ihl 4", mutate(func(d []byte) { d[HeaderLen] = 0x44 }), testPeerEP, DropBadHeaderLength},
		{"ihl beyond packet", func() []byte { d := datagram(24, "10.244.2.5", "10.244.1.9", 64); d[HeaderLen] = 0x4f; return d }(), testPeerEP, DropBadHeaderLength},
		{"total length short", mutate(func(d []byte) { binary.BigEndian.PutUint16(d[HeaderLen+2:], 59) }), testPeerEP, DropLengthMismatch},
		{"total length long", mutate(func(d []byte) { binary.BigEndian.PutUint16(d[HeaderLen+2:], 61) }), testPeerEP, DropLengthMismatch},
		{"non-peer address", good(), netip.MustParseAddrPort("192.0.2.99:8285"), DropUnknownPeer},
		{"peer address wrong port", good(), netip.MustParseAddrPort("192.0.2.2:9999"), DropUnknownPeer},
		{"peer's next source port", good(), netip.MustParseAddrPort("192.0.2.2:8286"), notDropped},
		{"peer's last source port", good(), netip.MustParseAddrPort("192.0.2.2:8292"), notDropped},
		{"peer address, port above its source ports", good(), netip.MustParseAddrPort("192.0.2.2:8293"), DropUnknownPeer},
		{"peer address, port below its endpoint's", good(), netip.MustParseAddrPort("192.0.2.2:8284"), DropUnknownPeer},
		{"peer address, ephemeral port", good(), netip.MustParseAddrPort("192.0.2.2:40000"), DropUnknownPeer},
		{"peer address, port 0", good(), netip.MustParseAddrPort("192.0.2.2:0"), DropUnknownPeer},
		{"other peer's source port spoofing", good(), netip.MustParseAddrPort("192.0.2.3:8290"), DropSpoofedInnerSource},
		{"peer's host address from a source port", datagram(60, "192.0.2.2", "10.244.1.9", 64), netip.MustParseAddrPort("192.0.2.2:8287"), notDropped},
		{"peer's host address from above its source ports", datagram(60, "192.0.2.2", "10.244.1.9", 64), netip.MustParseAddrPort("192.0.2.2:8293"), DropUnknownPeer},
		{"peer spoofing other peer's subnet", good(), testOtherEP, DropSpoofedInnerSource},
		{"peer spoofing unleased subnet", datagram(60, "10.244.77.5", "10.244.1.9", 64), testPeerEP, DropSpoofedInnerSource},
		{"peer spoofing outside network", datagram(60, "8.8.8.8", "10.244.1.9", 64), testPeerEP, DropSpoofedInnerSource},
		{"peer's own host address", datagram(60, "192.0.2.2", "10.244.1.9", 64), testPeerEP, notDropped},
		{"other peer's host address", datagram(60, "192.0.2.3", "10.244.1.9", 64), testPeerEP, DropSpoofedInnerSource},
		{"peer's host address from its wrong port", datagram(60, "192.0.2.2", "10.244.1.9", 64), netip.MustParseAddrPort("192.0.2.2:9999"), DropUnknownPeer},
		{"unknown sender, its own address", datagram(60, "192.0.2.99", "10.244.1.9", 64), netip.MustParseAddrPort("192.0.2.99:8285"), DropUnknownPeer},
		{"peer's host address to other subnet", datagram(60, "192.0.2.2", "10.244.3.9", 64), testPeerEP, DropWrongDestination},
		{"unknown sender, unleased source", datagram(60, "10.244.77.5", "10.244.1.9", 64), netip.MustParseAddrPort("192.0.2.99:1"), DropUnknownPeer},
		{"destination other subnet", datagram(60, "10.244.2.5", "10.244.3.9", 64), testPeerEP, DropWrongDestination},
		{"destination outside network", datagram(60, "10.244.2.5", "1.1.1.1", 64), testPeerEP, DropWrongDestination},
		{"subnet broadcast", datagram(60, "10.244.2.5", "10.244.1.255", 64), testPeerEP, DropBroadcastDestination},
		{"subnet network address", datagram(60, "10.244.2.5", "10.244.1.0", 64), testPeerEP, notDropped},
		{"last host address", datagram(60, "10.244.2.5", "10.244.1.254", 64), testPeerEP, notDropped},
		{"limited broadcast", datagram(60, "10.244.2.5", "255.255.255.255", 64), testPeerEP, DropWrongDestination},
		{"ip options", withOptions(datagram(64, "10.244.2.5", "10.244.1.9", 64)), testPeerEP, DropIPOptions},
		{"ip options from unknown sender", withOptions(datagram(64, "10.244.2.5", "10.244.1.9", 64)), netip.MustParseAddrPort("192.0.2.99:8285"), DropUnknownPeer},
		{"ttl 1", datagram(60, "10.244.2.5", "10.244.1.9", 1), testPeerEP, DropTTLExpired},
		{"ttl 0", datagram(60, "10.244.2.5", "10.244.1.9", 0), testPeerEP, DropTTLExpired},
		{"ttl 2", datagram(60, "10.244.2.5", "10.244.1.9", 2), testPeerEP, notDropped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, got := p.decap(tt.d, tt.src)
			if got != tt.want {
				t.Fatalf("decap = %v, want %v", got, tt.want)
			}
			if got == notDropped && n != len(tt.d)-HeaderLen {
				t.Fatalf("inner length %d, want %d", n, len(tt.d)-HeaderLen)
			}
		})
	}
}

func TestDecapTTLChecksum(t *testing.T) {
	p := newRXPath(newTestTable(t), testLocal, netip.Prefix{}, DefaultSourcePorts)
	for _, ttl := range []byte{2, 64, 128, 255} {
		d := datagram(40, "10.244.2.5", "10.244.1.9", ttl)
		binary.BigEndian.PutUint16(d[HeaderLen+4:], 0xfffe) // vary the id so folding is exercised
		binary.BigEndian.PutUint16(d[HeaderLen+10:], 0)
		binary.BigEndian.PutUint16(d[HeaderLen+10:], checksum(d[HeaderLen:HeaderLen+20]))
		if _, r := p.decap(d, testPeerEP); r != notDropped {
			t.Fatalf("ttl %d: %v", ttl, r)
		}
		inner := d[HeaderLen:]
		if inner[8] != ttl-1 {
			t.Fatalf("ttl %d -> %d", ttl, inner[8])
		}
		if c := checksum(inner[:20]); c != 0 {
			t.Fatalf("ttl %d: header checksum invalid after decrement (verify = %#04x)", ttl, c)
		}
	}
}

func TestDecapBatchCounts(t *testing.T) {
	p := newRXPath(newTestTable(t), testLocal, netip.Prefix{}, DefaultSourcePorts)
	in := [][]byte{
		datagram(100, "10.244.2.5", "10.244.1.9", 64),
		datagram(100, "10.244.2.5", "10.244.1.9", 1),
		{1, 2},
		datagram(1400, "10.244.2.6", "10.244.1.10", 64),
	}
	for i, d := range in {
		p.views[i] = p.bufs[i][:copy(p.bufs[i], d)]
		p.srcs[i] = testPeerEP
	}
	w := p.decapBatch(len(in))
	if w != 2 {
		t.Fatalf("decapBatch forwarded %d, want 2", w)
	}
	if len(p.writes[0]) != 100 || len(p.writes[1]) != 1400 {
		t.Fatalf("write lengths %d %d", len(p.writes[0]), len(p.writes[1]))
	}
	if p.writes[0][0] != 0x45 || p.writes[0][8] != 63 {
		t.Fatal("write is not the inner packet with its TTL decremented")
	}
	var c dirCounters
	c.flush(&p.tally, len(in))
	s := c.snapshot()
	if s.Packets != 2 || s.Bytes != 1500 || s.Batches != 1 || s.BatchSizes[2] != 1 ||
		s.Drops[DropTTLExpired] != 1 || s.Drops[DropTooShort] != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// withOptions turns the inner packet of d (at least 24 bytes) into one whose
// header carries 4 bytes of options (a record-route stub and end of list).
func withOptions(d []byte) []byte {
	inner := d[HeaderLen:]
	inner[0] = 0x46
	copy(inner[20:24], []byte{7, 3, 4, 0})
	binary.BigEndian.PutUint16(inner[10:], 0)
	binary.BigEndian.PutUint16(inner[10:], checksum(inner[:24]))
	return d
}

// TestL4PartialFlag: the receiver accepts the partial flag on TCP only and
// reports it per packet.
func TestL4PartialFlag(t *testing.T) {
	p := newRXPath(newTestTable(t), testLocal, netip.Prefix{}, DefaultSourcePorts)
	putHeaderL4Partial(p.views[0])
	putTCPPacket(p.views[0][HeaderLen:], 152, "10.244.2.5", "10.244.1.9")
	p.views[0], p.srcs[0] = p.bufs[0][:HeaderLen+152], testPeerEP
	putHeaderL4Partial(p.views[1])
	putIPv4(p.views[1][HeaderLen:], 100, "10.244.2.5", "10.244.1.9", 64) // UDP
	p.views[1], p.srcs[1] = p.bufs[1][:HeaderLen+100], testPeerEP
	if got := p.decapBatch(2); got != 1 || !p.partial[0] {
		t.Fatalf("decapBatch = %d (partial %v), want the TCP one, partial", got, p.partial[0])
	}
	if p.tally.drops[DropReservedBits] != 1 {
		t.Fatalf("partial flag on UDP not dropped as reserved_bits: %v", p.tally.drops)
	}
	d := datagram(60, "10.244.2.5", "10.244.1.9", 64)
	d[3] = 0x02
	if _, r := p.decap(d, testPeerEP); r != DropReservedBits {
		t.Fatalf("unknown flag bit: %v", r)
	}
}
