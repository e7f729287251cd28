package tundev

import (
	"encoding/binary"
	"net/netip"
	"os"
	"testing"
)

// putTCP writes a TCP/IPv4 segment (DF, 12-byte timestamp-like option, full
// TCP checksum) with payload bytes derived from seq into b and returns it.
func putTCP(b []byte, payload int, seq uint32, flags byte) []byte {
	const hdr = ipv4HeaderLen + 32
	p := b[:hdr+payload]
	clear(p[:hdr])
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	binary.BigEndian.PutUint16(p[4:], uint16(seq)) // IP id
	binary.BigEndian.PutUint16(p[6:], ipv4FlagsDFOnly)
	p[8], p[9] = 63, protoTCP
	s, d := netip.MustParseAddr("10.244.2.5").As4(), netip.MustParseAddr("10.244.1.9").As4()
	copy(p[12:16], s[:])
	copy(p[16:20], d[:])
	binary.BigEndian.PutUint16(p[10:], Checksum(p[:20]))
	t := p[ipv4HeaderLen:]
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
	binary.BigEndian.PutUint16(t[16:], tcpChecksum(p))
	return p
}

// tcpChecksum computes the full TCP checksum of an IPv4 packet (field as is).
func tcpChecksum(p []byte) uint16 {
	seg := make([]byte, 12+len(p)-ipv4HeaderLen)
	copy(seg, p[12:20])
	seg[9] = protoTCP
	binary.BigEndian.PutUint16(seg[10:], uint16(len(p)-ipv4HeaderLen))
	copy(seg[12:], p[ipv4HeaderLen:])
	seg[12+tcpCsumOffset], seg[12+tcpCsumOffset+1] = 0, 0
	return Checksum(seg)
}

// segmentBatch builds n segments of mss bytes (the last one lastLen) with
// consecutive sequence numbers, each in its own buffer (bare packets, as the
// receive path hands them over).
func segmentBatch(n, mss, lastLen int) [][]byte {
	bufs := newBuffers(n)
	pkts := make([][]byte, n)
	seq := uint32(1000)
	for i := range n {
		l := mss
		if i == n-1 {
			l = lastLen
		}
		flags := byte(tcpFlagACK)
		if i == n-1 {
			flags |= tcpFlagPSH
		}
		pkts[i] = putTCP(bufs[i][Headroom:], l, seq, flags)
		seq += uint32(l)
	}
	return pkts
}

func TestCoalesceRunBuildsSuperpacket(t *testing.T) {
	const mss, n, last = 1388, 5, 700
	pkts := segmentBatch(n, mss, last)
	seg, ok := parseCoalescable(pkts[0])
	if !ok || seg.hdrLen != 52 || seg.payload != mss || seg.seq != 1000 {
		t.Fatalf("parse first segment: %+v %v", seg, ok)
	}
	segs, total, gotMSS, lastFlags := coalesceRun(pkts, seg)
	if segs != n || gotMSS != mss || total != 52+(n-1)*mss+last || lastFlags != tcpFlagACK|tcpFlagPSH {
		t.Fatalf("coalesceRun = %d segs, total %d, mss %d, flags %#x", segs, total, gotMSS, lastFlags)
	}
	v := make([]byte, virtioNetHdrLen)
	finishSuperpacket(v, pkts[0], total, seg, mss, lastFlags)
	pkt := append([]byte(nil), pkts[0]...)
	for _, q := range pkts[1:segs] {
		pkt = append(pkt, q[seg.hdrLen:]...)
	}

	if got := binary.BigEndian.Uint16(pkt[2:]); int(got) != total {
		t.Errorf("IPv4 total length %d, want %d", got, total)
	}
	if Checksum(pkt[:ipv4HeaderLen]) != 0 {
		t.Error("IPv4 header checksum does not verify")
	}
	if pkt[ipv4HeaderLen+tcpFlagsOffset] != tcpFlagACK|tcpFlagPSH {
		t.Errorf("TCP flags %#x, want ACK|PSH from the last segment", pkt[ipv4HeaderLen+tcpFlagsOffset])
	}
	if got := binary.BigEndian.Uint32(pkt[ipv4HeaderLen+4:]); got != 1000 {
		t.Errorf("sequence number %d, want the first segment's 1000", got)
	}
	// Payload: contiguous bytes byte(seq) for seq = 1000.. .
	for i, b := range pkt[seg.hdrLen:] {
		if b != byte(1000+i) {
			t.Fatalf("payload byte %d = %d, want %d", i, b, byte(1000+i))
		}
	}
	// Partial checksum: completing it over the TCP segment as the kernel does
	// (checksum from csum_start with the field holding the pseudo-header sum)
	// must give the full TCP checksum.
	partial := binary.BigEndian.Uint16(pkt[ipv4HeaderLen+tcpCsumOffset:])
	completed := checksumWithInitial(pkt[ipv4HeaderLen:])
	binary.BigEndian.PutUint16(pkt[ipv4HeaderLen+tcpCsumOffset:], 0)
	if want := tcpChecksum(pkt); completed != want {
		t.Errorf("completed checksum %#x (partial %#x), want %#x", completed, partial, want)
	}
	want := make([]byte, virtioNetHdrLen)
	putVirtioHeader(want, virtioHeader{flags: 1, gsoType: 1, hdrLen: 52, gsoSize: mss, csumStart: 20, csumOffset: 16})
	if string(v) != string(want) {
		t.Errorf("virtio header % x, want % x", v, want)
	}
	if want[0] != virtioNetHdrFNeedsCsum || want[1] != virtioNetHdrGSOTCPv4 ||
		binary.NativeEndian.Uint16(want[2:]) != 52 || binary.NativeEndian.Uint16(want[4:]) != mss ||
		binary.NativeEndian.Uint16(want[6:]) != 20 || binary.NativeEndian.Uint16(want[8:]) != 16 {
		t.Errorf("virtio header encoding % x", want)
	}
}

// checksumWithInitial is the Internet checksum of b as the kernel completes a
// CHECKSUM_PARTIAL packet: over b with the checksum field as it is.
func checksumWithInitial(b []byte) uint16 { return Checksum(b) }

func TestCoalesceRunStops(t *testing.T) {
	const mss = 1000
	cases := []struct {
		name   string
		mutate func(pkts [][]byte)
		want   int
	}{
		{"all four", func([][]byte) {}, 4},
		{"sequence gap", func(p [][]byte) { bumpSeq(p[2][Headroom:], 1) }, 2},
		{"other port", func(p [][]byte) { p[2][ipv4HeaderLen+1]++ }, 2},
		{"other ack", func(p [][]byte) { p[1][ipv4HeaderLen+11]++ }, 1},
		{"other window", func(p [][]byte) { p[3][ipv4HeaderLen+15]++ }, 3},
		{"other options", func(p [][]byte) { p[2][ipv4HeaderLen+31]++ }, 2},
		{"other TTL", func(p [][]byte) { p[1][ipv4TTLOffset]-- }, 1},
		{"other TOS", func(p [][]byte) { p[1][1] = 2 }, 1},
		{"FIN", func(p [][]byte) { p[2][ipv4HeaderLen+tcpFlagsOffset] |= 1 }, 2},
		{"PSH in the middle ends the run", func(p [][]byte) { p[1][ipv4HeaderLen+tcpFlagsOffset] |= tcpFlagPSH }, 2},
		{"no DF", func(p [][]byte) { p[2][6] = 0 }, 2},
		{"IP options", func(p [][]byte) { p[1][0] = 0x46 }, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pkts := segmentBatch(4, mss, mss)
			c.mutate(pkts)
			seg, ok := parseCoalescable(pkts[0])
			if !ok {
				t.Fatal("first segment not coalescable")
			}
			if segs, _, _, _ := coalesceRun(pkts, seg); segs != c.want {
				t.Fatalf("took %d segments, want %d", segs, c.want)
			}
		})
	}
	t.Run("shorter segment ends the run", func(t *testing.T) {
		pkts := segmentBatch(2, mss, 10)
		pkts = append(pkts, segmentBatch(1, mss, mss)...)
		binary.BigEndian.PutUint32(pkts[2][ipv4HeaderLen+4:], 1000+mss+10)
		seg, _ := parseCoalescable(pkts[0])
		if segs, _, _, _ := coalesceRun(pkts, seg); segs != 2 {
			t.Fatalf("took %d segments, want 2", segs)
		}
	})
	t.Run("larger segment not taken", func(t *testing.T) {
		pkts := segmentBatch(1, 500, 500)
		pkts = append(pkts, segmentBatch(1, mss, mss)...)
		binary.BigEndian.PutUint32(pkts[1][ipv4HeaderLen+4:], 1500)
		seg, _ := parseCoalescable(pkts[0])
		if segs, _, _, _ := coalesceRun(pkts, seg); segs != 1 {
			t.Fatalf("took %d segments, want 1", segs)
		}
	})
	t.Run("64 KiB limit", func(t *testing.T) {
		pkts := segmentBatch(60, 1400, 1400)
		seg, _ := parseCoalescable(pkts[0])
		segs, total, _, _ := coalesceRun(pkts, seg)
		if total > maxIPv4Packet || segs != (maxIPv4Packet-52)/1400 {
			t.Fatalf("took %d segments, %d bytes", segs, total)
		}
	})
}

func bumpSeq(p []byte, d uint32) {
	s := binary.BigEndian.Uint32(p[ipv4HeaderLen+4:])
	binary.BigEndian.PutUint32(p[ipv4HeaderLen+4:], s+d)
}

func TestParseCoalescableRejects(t *testing.T) {
	buf := make([]byte, 2000)
	for name, f := range map[string]func(p []byte) []byte{
		"udp":        func(p []byte) []byte { p[9] = 17; return p },
		"syn":        func(p []byte) []byte { p[ipv4HeaderLen+tcpFlagsOffset] = 0x12; return p },
		"no ack":     func(p []byte) []byte { p[ipv4HeaderLen+tcpFlagsOffset] = 0; return p },
		"pure ack":   func(p []byte) []byte { return p[:52] },
		"fragment":   func(p []byte) []byte { p[6] = 0x20; return p },
		"short doff": func(p []byte) []byte { p[ipv4HeaderLen+12] = 4 << 4; return p },
		"huge doff":  func(p []byte) []byte { p[ipv4HeaderLen+12] = 15 << 4; return p[:60] },
		"truncated":  func(p []byte) []byte { return p[:39] },
		// found by FuzzWriteRun: an IP length that is not the buffer's
		"ip length longer": func(p []byte) []byte { binary.BigEndian.PutUint16(p[2:], uint16(len(p)+1400)); return p },
		"trailing bytes":   func(p []byte) []byte { return p[:len(p)+8] },
		"ipv6 length longer": func(p []byte) []byte {
			p6 := putTCP6(buf, 100, 1, tcpFlagACK)
			binary.BigEndian.PutUint16(p6[ipv6PayloadLenOff:], 1500)
			return p6
		},
		"ipv6 trailing bytes": func(p []byte) []byte { p6 := putTCP6(buf, 100, 1, tcpFlagACK); return p6[:len(p6)+8] },
	} {
		p := f(putTCP(buf, 100, 1, tcpFlagACK))
		if _, ok := parseCoalescable(p); ok {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestTUNWriterZeroAllocs writes batches of coalescable segments and single
// TCP packets through writer into /dev/null (standing in for the TUN file).
func TestTUNWriterZeroAllocs(t *testing.T) {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("open %s: %v", os.DevNull, err)
	}
	t.Cleanup(func() { _ = f.Close() })
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	w := newWriterOn(rc, nil, true, batchSize)
	pkts := segmentBatch(batchSize, 1400, 1400)
	pkts[40][ipv4HeaderLen+tcpFlagsOffset] |= 1 // a FIN: written alone
	pristine := make([][]byte, len(pkts))
	for i, p := range pkts {
		pristine[i] = append([]byte(nil), p...)
	}
	partial := make([]bool, len(pkts))
	partial[40], partial[41] = true, true // a partial single and a partial run start
	failed := 0
	allocs := testing.AllocsPerRun(100, func() {
		for i := range pkts {
			copy(pkts[i], pristine[i])
		}
		bad, err := w.write(pkts, partial)
		if err != nil {
			panic(err)
		}
		failed += bad
	})
	if allocs != 0 {
		t.Fatalf("writer.write allocates %.1f times per batch", allocs)
	}
	if failed != 0 {
		t.Fatalf("%d failed writes", failed)
	}
}

func BenchmarkCoalesce(b *testing.B) {
	pkts := segmentBatch(batchSize, 1400, 1400)
	vhdr := make([]byte, virtioNetHdrLen)
	b.SetBytes(batchSize * 1400)
	b.ReportAllocs()
	for b.Loop() {
		for i := 0; i < batchSize; {
			seg, _ := parseCoalescable(pkts[i])
			segs, total, mss, last := coalesceRun(pkts[i:], seg)
			finishSuperpacket(vhdr, pkts[i], total, seg, mss, last)
			// restore the length field coalescing changed
			binary.BigEndian.PutUint16(pkts[i][2:], uint16(len(pkts[i])))
			i += segs
		}
	}
}
