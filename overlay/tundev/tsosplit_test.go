package tundev

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// superpacketFrame builds what the kernel hands a TUN reader for a TSO send:
// a virtio header (NEEDS_CSUM, GSO_TCPV4) and one TCP/IPv4 packet carrying
// data bytes with the pseudo-header sum in its checksum field, at
// buf[Headroom-virtioNetHdrLen:].
func superpacketFrame(buf []byte, data, mss int, flags byte) []byte {
	pkt := putTCP(buf[Headroom:], data, 5000, flags)
	binary.BigEndian.PutUint16(pkt[4:], 100) // IP id
	binary.BigEndian.PutUint16(pkt[10:], 0)
	binary.BigEndian.PutUint16(pkt[10:], Checksum(pkt[:20]))
	binary.BigEndian.PutUint16(pkt[ipv4HeaderLen+tcpCsumOffset:], PseudoHeaderSum(pkt, protoTCP, len(pkt)-ipv4HeaderLen))
	putVirtioHeader(buf[Headroom-virtioNetHdrLen:], virtioHeader{
		flags: virtioNetHdrFNeedsCsum, gsoType: virtioNetHdrGSOTCPv4,
		hdrLen: 52, gsoSize: uint16(mss), csumStart: 20, csumOffset: tcpCsumOffset,
	})
	return buf[Headroom-virtioNetHdrLen : Headroom+len(pkt)]
}

func TestSplitGSOTCP(t *testing.T) {
	const mss, data = 1000, 3500
	bufs := newBuffers(8)
	frame := superpacketFrame(bufs[0], data, mss, tcpFlagACK|tcpFlagPSH|tcpFlagFIN)
	sizes, partial := make([]int, 8), make([]bool, 8)
	n, _, ok := splitGSO(frame[virtioNetHdrLen:], readVirtioHeader(frame), bufs, sizes, partial, nil)
	if !ok || n != 4 {
		t.Fatalf("splitGSO = %d, %v; want 4 segments", n, ok)
	}
	for i := range n {
		seg := bufs[i][Headroom : Headroom+sizes[i]]
		want := min(mss, data-i*mss)
		if sizes[i] != 52+want || int(binary.BigEndian.Uint16(seg[2:])) != sizes[i] {
			t.Errorf("segment %d: size %d, total length %d, want %d", i, sizes[i], binary.BigEndian.Uint16(seg[2:]), 52+want)
		}
		if Checksum(seg[:20]) != 0 {
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
		completed := Checksum(seg[ipv4HeaderLen:])
		if want := tcpChecksum(seg); completed != want {
			t.Errorf("segment %d: completed checksum %#x, want %#x", i, completed, want)
		}
	}
}

func TestSplitGSORefuses(t *testing.T) {
	bufs := newBuffers(4)
	sizes, partial := make([]int, 4), make([]bool, 4)
	frame := superpacketFrame(bufs[0], 5000, 1000, tcpFlagACK)
	if _, need, ok := splitGSO(frame[virtioNetHdrLen:], readVirtioHeader(frame), bufs, sizes, partial, nil); ok || need != 5 {
		t.Errorf("5 segments into 4 buffers: ok=%v need=%d", ok, need)
	}
	h := readVirtioHeader(frame)
	h.csumStart = 24
	if _, _, ok := splitGSO(frame[virtioNetHdrLen:], h, bufs, sizes, partial, nil); ok {
		t.Error("accepted csum_start that is not the IPv4 header length")
	}
	h = readVirtioHeader(frame)
	h.gsoSize = 0
	if _, _, ok := splitGSO(frame[virtioNetHdrLen:], h, bufs, sizes, partial, nil); ok {
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
		if n, _, ok := splitGSO(frame[virtioNetHdrLen:], readVirtioHeader(frame), bufs, sizes, partial, nil); !ok || n != 43 {
			panic("split failed")
		}
	})
	if allocs != 0 {
		t.Fatalf("splitGSO allocates %.1f times", allocs)
	}
}

func BenchmarkSplitGSO(b *testing.B) {
	bufs := newBuffers(64)
	sizes, partial := make([]int, 64), make([]bool, 64)
	frame := superpacketFrame(make([]byte, BufSize), 44*1400, 1400, tcpFlagACK)
	h := readVirtioHeader(frame)
	pkt := frame[virtioNetHdrLen:]
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := splitGSO(pkt, h, bufs, sizes, partial, nil); !ok {
			b.Fatal("split failed")
		}
	}
}

func BenchmarkChecksum1400(b *testing.B) {
	buf := make([]byte, 1400)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	b.SetBytes(1400)
	for b.Loop() {
		_ = Checksum(buf)
	}
}

// TestSplitGSOViews checks that the view split (headers in their own buffers,
// payloads left in the superpacket) gives the same segments as the copy.
func TestSplitGSOViews(t *testing.T) {
	for _, data := range []int{1000, 4000, 4321, 44 * 1400} {
		copied := newBuffers(64)
		sizes, partial := make([]int, 64), make([]bool, 64)
		frame := superpacketFrame(make([]byte, BufSize), data, 1400, tcpFlagACK|tcpFlagPSH)
		h := readVirtioHeader(frame)
		n, _, ok := splitGSO(append([]byte(nil), frame[virtioNetHdrLen:]...), h, copied, sizes, partial, nil)
		if !ok {
			t.Fatal("copy split failed")
		}
		viewed := newBuffers(64)
		frame = superpacketFrame(viewed[0], data, 1400, tcpFlagACK|tcpFlagPSH) // in place, as the reader reads
		vsizes, vpartial, tails := make([]int, 64), make([]bool, 64), make([][]byte, 64)
		for i := range tails {
			tails[i] = []byte("stale")
		}
		vn, _, ok := splitGSO(frame[virtioNetHdrLen:], h, viewed, vsizes, vpartial, tails)
		if !ok || vn != n {
			t.Fatalf("%d bytes: view split = %d, %v; copy split %d", data, vn, ok, n)
		}
		for i := 0; i < n; i++ {
			head := viewed[i][Headroom : Headroom+vsizes[i]-len(tails[i])]
			seg := append(append([]byte(nil), head...), tails[i]...)
			want := copied[i][Headroom : Headroom+sizes[i]]
			if !bytes.Equal(seg, want) || vpartial[i] != partial[i] {
				t.Fatalf("%d bytes, segment %d: view split differs from the copy", data, i)
			}
			if i == 0 && tails[0] != nil {
				t.Fatal("segment 0 has a tail: it should stay in place")
			}
		}
	}
}
