package tundev

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

// putTCP6 writes a TCP/IPv6 segment (12-byte option, full TCP checksum)
// with payload bytes derived from seq into b and returns it.
func putTCP6(b []byte, payload int, seq uint32, flags byte) []byte {
	const hdr = ipv6HeaderLen + 32
	p := b[:hdr+payload]
	clear(p[:hdr])
	binary.BigEndian.PutUint32(p[0:], 6<<28|0x12345) // flow label 0x12345
	binary.BigEndian.PutUint16(p[ipv6PayloadLenOff:], uint16(len(p)-ipv6HeaderLen))
	p[ipv6NextHdrOff], p[ipv6HopLimitOff] = protoTCP, 63
	s, d := netip.MustParseAddr("fd10:244:0:2::5").As16(), netip.MustParseAddr("fd10:244:0:1::9").As16()
	copy(p[8:24], s[:])
	copy(p[24:40], d[:])
	t := p[ipv6HeaderLen:]
	binary.BigEndian.PutUint16(t[0:], 40000)
	binary.BigEndian.PutUint16(t[2:], 5201)
	binary.BigEndian.PutUint32(t[4:], seq)
	binary.BigEndian.PutUint32(t[8:], 777)
	t[12] = 8 << 4
	t[13] = flags
	binary.BigEndian.PutUint16(t[14:], 512)
	copy(t[20:32], []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2})
	for i := range payload {
		p[hdr+i] = byte(seq + uint32(i))
	}
	binary.BigEndian.PutUint16(t[16:], tcp6Checksum(p))
	return p
}

// tcp6Checksum computes the full TCP checksum of an IPv6 packet (field as is).
func tcp6Checksum(p []byte) uint16 {
	l4 := len(p) - ipv6HeaderLen
	seg := make([]byte, 40+l4)
	copy(seg, p[8:40])
	binary.BigEndian.PutUint32(seg[32:], uint32(l4))
	seg[39] = protoTCP
	copy(seg[40:], p[ipv6HeaderLen:])
	seg[40+tcpCsumOffset], seg[40+tcpCsumOffset+1] = 0, 0
	return Checksum(seg)
}

func TestPseudoHeaderSumIPv6(t *testing.T) {
	p := putTCP6(make([]byte, 200), 100, 1, tcpFlagACK)
	// The partial field completed over the segment equals the full checksum.
	want := binary.BigEndian.Uint16(p[ipv6HeaderLen+tcpCsumOffset:])
	binary.BigEndian.PutUint16(p[ipv6HeaderLen+tcpCsumOffset:], PseudoHeaderSumIPv6(p, protoTCP, len(p)-ipv6HeaderLen))
	if got := Checksum(p[ipv6HeaderLen:]); got != want {
		t.Fatalf("completed %#x, want %#x", got, want)
	}
}

// A TSO superpacket of TCP/IPv6 (GSO_TCPV6, as the kernel hands it over
// with TUN_F_TSO6) splits into segments with the right payload length,
// sequence numbers, flags and partial checksums that complete correctly.
func TestSplitGSOTCPv6(t *testing.T) {
	const mss, data = 1000, 3500
	for _, withTails := range []bool{false, true} {
		bufs := newBuffers(8)
		pkt := putTCP6(bufs[0][Headroom:], data, 5000, tcpFlagACK|tcpFlagPSH|tcpFlagFIN)
		binary.BigEndian.PutUint16(pkt[ipv6HeaderLen+tcpCsumOffset:], PseudoHeaderSumIPv6(pkt, protoTCP, len(pkt)-ipv6HeaderLen))
		h := virtioHeader{flags: virtioNetHdrFNeedsCsum, gsoType: virtioNetHdrGSOTCPv6,
			hdrLen: 72, gsoSize: mss, csumStart: ipv6HeaderLen, csumOffset: tcpCsumOffset}
		sizes, partial := make([]int, 8), make([]bool, 8)
		var tails [][]byte
		if withTails {
			tails = make([][]byte, 8)
		}
		n, _, ok := splitGSO(pkt, h, bufs, sizes, partial, tails)
		if !ok || n != 4 {
			t.Fatalf("splitGSO = %d, %v; want 4 segments", n, ok)
		}
		for i := range n {
			seg := bufs[i][Headroom : Headroom+sizes[i]]
			if withTails && i > 0 {
				seg = append(append([]byte(nil), bufs[i][Headroom:Headroom+72]...), tails[i]...)
			}
			want := min(mss, data-i*mss)
			if len(seg) != 72+want || int(binary.BigEndian.Uint16(seg[ipv6PayloadLenOff:])) != len(seg)-ipv6HeaderLen {
				t.Fatalf("segment %d: size %d, payload length %d", i, len(seg), binary.BigEndian.Uint16(seg[4:]))
			}
			if seq := binary.BigEndian.Uint32(seg[ipv6HeaderLen+4:]); seq != 5000+uint32(i*mss) {
				t.Errorf("segment %d: seq %d", i, seq)
			}
			flags := seg[ipv6HeaderLen+tcpFlagsOffset]
			wantFlags := byte(tcpFlagACK)
			if i == n-1 {
				wantFlags |= tcpFlagPSH | tcpFlagFIN
			}
			if flags != wantFlags {
				t.Errorf("segment %d: flags %#x, want %#x", i, flags, wantFlags)
			}
			for j, b := range seg[72:] {
				if b != byte(5000+i*mss+j) {
					t.Fatalf("segment %d: payload byte %d = %d", i, j, b)
				}
			}
			if !partial[i] {
				t.Errorf("segment %d: not partial", i)
			}
			if got, want := Checksum(seg[ipv6HeaderLen:]), tcp6Checksum(seg); got != want {
				t.Errorf("segment %d: completed checksum %#x, want %#x", i, got, want)
			}
		}
	}
	// GSO_TCPV4 on an IPv6 packet (and the reverse) is malformed.
	bufs := newBuffers(8)
	pkt := putTCP6(bufs[0][Headroom:], data, 5000, tcpFlagACK)
	h := virtioHeader{flags: virtioNetHdrFNeedsCsum, gsoType: virtioNetHdrGSOTCPv4, hdrLen: 72, gsoSize: mss, csumStart: 40, csumOffset: tcpCsumOffset}
	if _, _, ok := splitGSO(pkt, h, bufs, make([]int, 8), make([]bool, 8), nil); ok {
		t.Fatal("GSO_TCPV4 accepted on an IPv6 packet")
	}
	h.gsoType, h.csumStart = virtioNetHdrGSOTCPv6, 20
	if _, _, ok := splitGSO(pkt, h, bufs, make([]int, 8), make([]bool, 8), nil); ok {
		t.Fatal("csum_start 20 accepted on an IPv6 packet")
	}
}

// Received TCP/IPv6 segments of one flow coalesce into a GSO_TCPV6
// superpacket whose headers and partial checksum the kernel accepts.
func TestCoalesceTCPv6(t *testing.T) {
	const mss, n, last = 1368, 5, 700
	bufs := newBuffers(n + 1)
	pkts := make([][]byte, n)
	seq := uint32(1000)
	for i := range n {
		l, flags := mss, byte(tcpFlagACK)
		if i == n-1 {
			l, flags = last, tcpFlagACK|tcpFlagPSH
		}
		pkts[i] = putTCP6(bufs[i][Headroom:], l, seq, flags)
		seq += uint32(l)
	}
	seg, ok := parseCoalescable(pkts[0])
	if !ok || seg.ipLen != ipv6HeaderLen || seg.hdrLen != 72 || seg.payload != mss {
		t.Fatalf("parse: %+v %v", seg, ok)
	}
	segs, total, gotMSS, lastFlags := coalesceRun(pkts, seg)
	if segs != n || gotMSS != mss || total != 72+(n-1)*mss+last {
		t.Fatalf("coalesceRun = %d segs, total %d, mss %d", segs, total, gotMSS)
	}
	v := make([]byte, virtioNetHdrLen)
	finishSuperpacket(v, pkts[0], total, seg, mss, lastFlags)
	h := readVirtioHeader(v)
	if h.gsoType != virtioNetHdrGSOTCPv6 || h.csumStart != 40 || h.hdrLen != 72 || h.gsoSize != mss {
		t.Fatalf("virtio header %+v", h)
	}
	pkt := append([]byte(nil), pkts[0]...)
	for _, q := range pkts[1:] {
		pkt = append(pkt, q[72:]...)
	}
	if int(binary.BigEndian.Uint16(pkt[ipv6PayloadLenOff:])) != total-ipv6HeaderLen {
		t.Fatal("payload length not the superpacket's")
	}
	if got, want := Checksum(pkt[ipv6HeaderLen:]), tcp6Checksum(pkt); got != want {
		t.Fatalf("completed checksum %#x, want %#x", got, want)
	}
	// A different flow label (or hop limit) ends the run.
	other := putTCP6(bufs[n][Headroom:], mss, 1000+mss, tcpFlagACK)
	other[3] ^= 1
	first := putTCP6(bufs[0][Headroom:], mss, 1000, tcpFlagACK)
	seg, _ = parseCoalescable(first)
	if segs, _, _, _ := coalesceRun([][]byte{first, other}, seg); segs != 1 {
		t.Fatal("segments with different flow labels coalesced")
	}
	// An IPv4 segment never joins an IPv6 run, nor extension headers parse.
	withExt := putTCP6(bufs[n][Headroom:], mss, 1000, tcpFlagACK)
	withExt[ipv6NextHdrOff] = 0
	if _, ok := parseCoalescable(withExt); ok {
		t.Fatal("a segment behind a Hop-by-Hop header parsed as coalescable")
	}
}

func TestL4Offset(t *testing.T) {
	p6 := putTCP6(make([]byte, 200), 10, 1, tcpFlagACK)
	if off, proto, ok := l4Offset(p6); !ok || off != 40 || proto != protoTCP {
		t.Fatalf("IPv6: %d %d %v", off, proto, ok)
	}
	p4 := putTCP(make([]byte, 200), 10, 1, tcpFlagACK)
	if off, proto, ok := l4Offset(p4); !ok || off != 20 || proto != protoTCP {
		t.Fatalf("IPv4: %d %d %v", off, proto, ok)
	}
	for _, bad := range [][]byte{nil, {0x60}, p6[:39], {0x46, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, {0x70}} {
		if _, _, ok := l4Offset(bad); ok {
			t.Fatalf("l4Offset(% x) ok", bad)
		}
	}
}
