package tundev

import (
	"bytes"
	"encoding/binary"
	"syscall"
	"testing"
	"unsafe"
)

// noWriteConn is a syscall.RawConn whose Write succeeds without writing:
// the fuzz target inspects the writev the TCPWriter prepared (its iovecs
// and virtio header) instead.
type noWriteConn struct{}

func (noWriteConn) Control(func(fd uintptr)) error    { return nil }
func (noWriteConn) Read(func(fd uintptr) bool) error  { return nil }
func (noWriteConn) Write(func(fd uintptr) bool) error { return nil }

var _ syscall.RawConn = noWriteConn{}

// splitRun cuts data into packets, each behind a 2-byte big-endian length
// (clipped to what is left).
func splitRun(data []byte) [][]byte {
	var pkts [][]byte
	for len(data) >= 2 && len(pkts) < 2*maxSegmentsPerWrite {
		n := min(int(binary.BigEndian.Uint16(data)), len(data)-2)
		pkts = append(pkts, data[2:2+n:2+n])
		data = data[2+n:]
	}
	return pkts
}

func joinRun(pkts ...[]byte) []byte {
	var b []byte
	for _, p := range pkts {
		b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
		b = append(b, p...)
	}
	return b
}

// ipLenField is the length pkt's IP header claims for the whole packet.
func ipLenField(pkt []byte) int {
	if pkt[0]>>4 == 6 {
		return ipv6HeaderLen + int(binary.BigEndian.Uint16(pkt[ipv6PayloadLenOff:]))
	}
	return int(binary.BigEndian.Uint16(pkt[2:]))
}

// FuzzWriteRun feeds untrusted packet runs (what a WireGuard peer or a udp
// overlay peer hands over after decryption: lying lengths, IHL, data
// offsets, options, truncated headers, disagreeing runs) through
// TCPWriter.WriteRun and checks what it would write: no panic, a count in
// [0, len] (0 exactly for non-TCP), a single packet written as it is, and a
// superpacket made of the first segment and the payloads of the others
// whose IP length, GSO size and header length agree with its segments.
func FuzzWriteRun(f *testing.F) {
	for _, n := range []int{1, 2, 5} {
		f.Add(joinRun(segmentBatch(n, 1388, 700)...), false)
	}
	b4, b6 := newBuffers(3), newBuffers(3)
	f.Add(joinRun(putTCP6(b6[0], 1200, 1, tcpFlagACK), putTCP6(b6[1], 1200, 1201, tcpFlagACK),
		putTCP6(b6[2], 5, 2401, tcpFlagACK|tcpFlagPSH)), true)
	f.Add(joinRun(putTCP(b4[0], 100, 1, tcpFlagACK), putUDP(b4[1], 60), putTCP(b4[2], 100, 101, tcpFlagACK)), true)
	f.Add(joinRun(nil, []byte{0x45}, make([]byte, 40)), false)

	f.Fuzz(func(t *testing.T, data []byte, partial bool) {
		pkts := splitRun(data)
		if len(pkts) == 0 {
			return
		}
		orig := make([][]byte, len(pkts))
		for i, p := range pkts {
			orig[i] = bytes.Clone(p)
		}
		w := NewTCPWriter(noWriteConn{})
		segs, err := w.WriteRun(pkts, partial)
		if err != nil {
			t.Fatalf("WriteRun: %v", err)
		}
		if segs < 0 || segs > len(pkts) || segs > maxSegmentsPerWrite {
			t.Fatalf("took %d of %d packets", segs, len(pkts))
		}
		off, proto, ok := l4Offset(orig[0])
		isTCP := ok && proto == protoTCP && off+tcpMinHeaderLen <= len(orig[0])
		if (segs == 0) == isTCP {
			t.Fatalf("took %d packets of a TCP(%v) packet % x", segs, isTCP, orig[0])
		}
		if segs == 0 {
			for i := range pkts {
				if !bytes.Equal(pkts[i], orig[i]) {
					t.Fatalf("packet %d changed though not taken", i)
				}
			}
			return
		}
		iov := func(i int) []byte {
			return unsafe.Slice(w.iovs[i].Base, int(w.iovs[i].Len))
		}
		same := func(a, b []byte) bool {
			return len(a) == len(b) && (len(a) == 0 || unsafe.SliceData(a) == unsafe.SliceData(b))
		}
		vh := readVirtioHeader(w.vhdr[:])
		if w.niov != 1+max(segs, 1) || !same(iov(0), w.vhdr[:]) || !same(iov(1), pkts[0]) {
			t.Fatalf("writev of %d segments: %d iovecs", segs, w.niov)
		}
		if segs == 1 {
			if !bytes.Equal(pkts[0], orig[0]) || vh.gsoType != virtioNetHdrGSONone {
				t.Fatalf("single packet changed or GSO %+v", vh)
			}
			return
		}
		seg, ok := parseCoalescable(orig[0])
		if !ok {
			t.Fatalf("coalesced a first packet parseCoalescable refuses: % x", orig[0])
		}
		total := len(pkts[0])
		for k := 1; k < segs; k++ {
			p := iov(1 + k)
			if !same(p, pkts[k][seg.hdrLen:]) {
				t.Fatalf("segment %d: iovec is not its payload", k)
			}
			if len(p) == 0 || len(p) > int(vh.gsoSize) || (k < segs-1 && len(p) != int(vh.gsoSize)) {
				t.Fatalf("segment %d: payload %d with GSO size %d", k, len(p), vh.gsoSize)
			}
			total += len(p)
		}
		if total > maxIPv4Packet || ipLenField(pkts[0]) != total {
			t.Fatalf("superpacket of %d bytes claims %d", total, ipLenField(pkts[0]))
		}
		if int(vh.gsoSize) != len(pkts[0])-seg.hdrLen || int(vh.hdrLen) != seg.hdrLen || vh.hdrLen >= uint16(len(pkts[0])) {
			t.Fatalf("virtio header %+v for first segment of %d bytes", vh, len(pkts[0]))
		}
		// Every segment said (in its own IP header) what it carries: a
		// segment whose buffer holds more than its IP length (trailing
		// bytes) must not lend them to the superpacket as TCP data.
		for k := range segs {
			if ipLenField(orig[k]) != len(orig[k]) {
				t.Fatalf("segment %d of %d bytes claims %d, coalesced", k, len(orig[k]), ipLenField(orig[k]))
			}
		}
	})
}
