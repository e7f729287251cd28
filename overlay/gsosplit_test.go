package overlay

import (
	"encoding/binary"
	"testing"
)

// superpacketFrame builds what the kernel hands a TUN reader for a TSO send:
// a virtio header (NEEDS_CSUM, GSO_TCPV4) and one TCP/IPv4 packet carrying
// data bytes with the pseudo-header sum in its checksum field, at
// buf[bufOffset-virtioNetHdrLen:].
func superpacketFrame(buf []byte, data, mss int, flags byte) []byte {
	pkt := putTCP(buf[bufOffset:], data, 5000, flags)
	binary.BigEndian.PutUint16(pkt[4:], 100) // IP id
	binary.BigEndian.PutUint16(pkt[10:], 0)
	binary.BigEndian.PutUint16(pkt[10:], checksum(pkt[:20]))
	binary.BigEndian.PutUint16(pkt[ipv4HeaderLen+tcpCsumOffset:], l4PseudoHeaderSum(pkt, protoTCP, len(pkt)-ipv4HeaderLen))
	putVirtioHeader(buf[bufOffset-virtioNetHdrLen:], virtioHeader{
		flags: virtioNetHdrFNeedsCsum, gsoType: virtioNetHdrGSOTCPv4,
		hdrLen: 52, gsoSize: uint16(mss), csumStart: 20, csumOffset: tcpCsumOffset,
	})
	return buf[bufOffset-virtioNetHdrLen : bufOffset+len(pkt)]
}

func TestSplitGSOTCP(t *testing.T) {
	const mss, data = 1000, 3500
	bufs := newBuffers(8)
	frame := superpacketFrame(bufs[0], data, mss, tcpFlagACK|tcpFlagPSH|tcpFlagFIN)
	sizes, partial := make([]int, 8), make([]bool, 8)
	n, _, ok := splitGSO(frame[virtioNetHdrLen:], readVirtioHeader(frame), bufs, sizes, partial)
	if !ok || n != 4 {
		t.Fatalf("splitGSO = %d, %v; want 4 segments", n, ok)
	}
	for i := range n {
		seg := bufs[i][bufOffset : bufOffset+sizes[i]]
		want := min(mss, data-i*mss)
		if sizes[i] != 52+want || int(binary.BigEndian.Uint16(seg[2:])) != sizes[i] {
			t.Errorf("segment %d: size %d, total length %d, want %d", i, sizes[i], binary.BigEndian.Uint16(seg[2:]), 52+want)
		}
		if checksum(seg[:20]) != 0 {
			t.Errorf("segment %d: IPv4 header checksum does not verify", i)
		}
		if id := binary.BigEndian.Uint16(seg[4:]); id != 100+uint16(i) {
			t.Errorf("segment %d: IP id %d", i, id)
		}
		if seq := binary.BigEndian.Uint32(seg[ipv4HeaderLen+4:]); seq != 5000+uint32(i*mss) {
			t.Errorf("segment %d: seq %d", i, seq)
		}
		flags := seg[ipv4HeaderLen+tcpFlagsOffset]
		wantFlags := byte(tcpFlagACK)
		if i == n-1 {
			wantFlags |= tcpFlagPSH | tcpFlagFIN
		}
		if flags != wantFlags {
			t.Errorf("segment %d: flags %#x, want %#x", i, flags, wantFlags)
		}
		for j, b := range seg[52:] {
			if b != byte(5000+i*mss+j) {
				t.Fatalf("segment %d: payload byte %d = %d", i, j, b)
			}
		}
		if !partial[i] {
			t.Errorf("segment %d: not marked partial", i)
		}
		// The partial sum completes to the segment's real TCP checksum.
		completed := checksum(seg[ipv4HeaderLen:])
		if want := tcpChecksum(seg); completed != want {
			t.Errorf("segment %d: completed checksum %#x, want %#x", i, completed, want)
		}
	}
}

func TestSplitGSORefuses(t *testing.T) {
	bufs := newBuffers(4)
	sizes, partial := make([]int, 4), make([]bool, 4)
	frame := superpacketFrame(bufs[0], 5000, 1000, tcpFlagACK)
	if _, need, ok := splitGSO(frame[virtioNetHdrLen:], readVirtioHeader(frame), bufs, sizes, partial); ok || need != 5 {
		t.Errorf("5 segments into 4 buffers: ok=%v need=%d", ok, need)
	}
	h := readVirtioHeader(frame)
	h.csumStart = 24
	if _, _, ok := splitGSO(frame[virtioNetHdrLen:], h, bufs, sizes, partial); ok {
		t.Error("accepted csum_start that is not the IPv4 header length")
	}
	h = readVirtioHeader(frame)
	h.gsoSize = 0
	if _, _, ok := splitGSO(frame[virtioNetHdrLen:], h, bufs, sizes, partial); ok {
		t.Error("accepted gso_size 0")
	}
}

func TestSplitGSOZeroAllocs(t *testing.T) {
	bufs := newBuffers(batchSize)
	sizes, partial := make([]int, batchSize), make([]bool, batchSize)
	frame := superpacketFrame(bufs[0], 60000, 1400, tcpFlagACK)
	pristine := append([]byte(nil), frame...)
	allocs := testing.AllocsPerRun(50, func() {
		copy(frame, pristine)
		if n, _, ok := splitGSO(frame[virtioNetHdrLen:], readVirtioHeader(frame), bufs, sizes, partial); !ok || n != 43 {
			panic("split failed")
		}
	})
	if allocs != 0 {
		t.Fatalf("splitGSO allocates %.1f times", allocs)
	}
}

// TestL4PartialFlag: the receiver accepts the partial flag on TCP only and
// reports it per packet.
func TestL4PartialFlag(t *testing.T) {
	p := newRXPath(newTestTable(t), testLocal)
	putHeaderL4Partial(p.views[0])
	putTCP(p.views[0][HeaderLen:], 100, 1, tcpFlagACK)
	copy(p.views[0][HeaderLen+12:], []byte{10, 244, 2, 5, 10, 244, 1, 9})
	p.sizes[0], p.srcs[0] = HeaderLen+152, testPeerEP
	putHeaderL4Partial(p.views[1])
	putIPv4(p.views[1][HeaderLen:], 100, "10.244.2.5", "10.244.1.9", 64) // UDP
	p.sizes[1], p.srcs[1] = HeaderLen+100, testPeerEP
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
