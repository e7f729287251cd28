package wireguard

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/weftnet/weft/overlay/tundev"
)

// The device hands Write its decrypted packets at this offset.
const wgOffset = 16

const (
	tFIN = 0x01
	tSYN = 0x02
	tRST = 0x04
	tPSH = 0x08
	tACK = 0x10
	tURG = 0x20
)

// seg describes one inner packet for the tests.
type seg struct {
	v6      bool
	proto   byte // 6 TCP (default), 17 UDP, 1 ICMP
	sport   uint16
	seq     uint32
	ack     uint32
	flags   byte // default ACK
	payload int
	ttl     byte
	tsval   uint32 // in the 12-byte timestamp option
}

// build returns a device buffer: wgOffset bytes, then the packet (complete
// checksums, payload bytes derived from seq).
func (s seg) build() []byte {
	if s.proto == 0 {
		s.proto = 6
	}
	if s.flags == 0 {
		s.flags = tACK
	}
	if s.ttl == 0 {
		s.ttl = 64
	}
	if s.sport == 0 {
		s.sport = 40000
	}
	ipLen := 20
	if s.v6 {
		ipLen = 40
	}
	l4Len := 8 // UDP, ICMP
	if s.proto == 6 {
		l4Len = 32 // 20 + NOP NOP timestamps
	}
	buf := make([]byte, wgOffset+ipLen+l4Len+s.payload)
	p := buf[wgOffset:]
	for i := range s.payload {
		p[ipLen+l4Len+i] = byte(s.seq + uint32(i))
	}
	if s.v6 {
		p[0] = 0x60
		binary.BigEndian.PutUint16(p[4:], uint16(l4Len+s.payload))
		p[6], p[7] = s.proto, s.ttl
		copy(p[8:], []byte{0x20, 0x01, 0x0d, 0xb8, 15: 2})
		copy(p[24:], []byte{0x20, 0x01, 0x0d, 0xb8, 15: 1})
	} else {
		p[0] = 0x45
		binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
		binary.BigEndian.PutUint16(p[4:], uint16(s.seq))
		binary.BigEndian.PutUint16(p[6:], 0x4000) // DF
		p[8], p[9] = s.ttl, s.proto
		copy(p[12:], []byte{10, 244, 2, 5, 10, 244, 1, 7})
		binary.BigEndian.PutUint16(p[10:], tundev.Checksum(p[:20]))
	}
	l4 := p[ipLen:]
	binary.BigEndian.PutUint16(l4[0:], s.sport)
	binary.BigEndian.PutUint16(l4[2:], 5201)
	csumAt := 6
	switch s.proto {
	case 6:
		binary.BigEndian.PutUint32(l4[4:], s.seq)
		binary.BigEndian.PutUint32(l4[8:], s.ack)
		l4[12] = 8 << 4
		l4[13] = s.flags
		binary.BigEndian.PutUint16(l4[14:], 512)
		copy(l4[20:], []byte{1, 1, 8, 10})
		binary.BigEndian.PutUint32(l4[24:], s.tsval)
		csumAt = 16
	case 17:
		binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
	}
	var sum uint16
	if s.proto != 1 {
		if s.v6 {
			sum = tundev.PseudoHeaderSumIPv6(p, s.proto, len(l4))
		} else {
			sum = tundev.PseudoHeaderSum(p, s.proto, len(l4))
		}
	}
	binary.BigEndian.PutUint16(l4[csumAt:], sum)
	binary.BigEndian.PutUint16(l4[csumAt:], tundev.Checksum(l4))
	return buf
}

// run returns n segments of one flow, mss bytes each but the last (last bytes).
func run(first seg, n, mss, last int) [][]byte {
	bufs := make([][]byte, n)
	s := first
	for i := range n {
		s.payload = mss
		if i == n-1 {
			s.payload = last
		}
		bufs[i] = s.build()
		s.seq += uint32(s.payload)
	}
	return bufs
}

// fakeLib is the library's TUN as far as the wrapper uses it: it records
// the buffers handed to its Write.
type fakeLib struct {
	tun.Device // nil: any other method panics
	file       *os.File
	got        [][]byte
	offsets    []int
	err        error
}

func (f *fakeLib) Write(bufs [][]byte, offset int) (int, error) {
	f.got = append(f.got, bufs...)
	f.offsets = append(f.offsets, offset)
	n := 0
	for _, b := range bufs {
		n += len(b) - offset // bytes, as the library counts
	}
	return n, f.err
}
func (f *fakeLib) BatchSize() int { return 128 }
func (f *fakeLib) File() *os.File { return f.file }

// frame is one write into the TUN: its virtio-net header and packet.
type frame struct {
	flags, gso                             byte
	hdrLen, gsoSize, csumStart, csumOffset uint16
	pkt                                    []byte
}

// seqpacketTUN stands in for the TUN's descriptor: one write, one frame.
func seqpacketTUN(t *testing.T) (rc syscall.RawConn, w *os.File, read func() []frame) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	for _, fd := range fds {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20); err != nil {
			t.Fatalf("SO_SNDBUF: %v", err)
		}
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		t.Fatalf("nonblock: %v", err)
	}
	w = os.NewFile(uintptr(fds[0]), "tun")
	t.Cleanup(func() { w.Close(); unix.Close(fds[1]) })
	rc, err = w.SyscallConn()
	if err != nil {
		t.Fatalf("raw conn: %v", err)
	}
	read = func() []frame {
		var out []frame
		buf := make([]byte, 70000)
		for {
			n, _, err := unix.Recvfrom(fds[1], buf, unix.MSG_DONTWAIT)
			if errors.Is(err, unix.EAGAIN) {
				return out
			}
			if err != nil {
				t.Fatalf("read frame: %v", err)
			}
			if n < 10 {
				t.Fatalf("frame of %d bytes: no virtio header", n)
			}
			b := buf[:n]
			out = append(out, frame{flags: b[0], gso: b[1], hdrLen: binary.NativeEndian.Uint16(b[2:]),
				gsoSize: binary.NativeEndian.Uint16(b[4:]), csumStart: binary.NativeEndian.Uint16(b[6:]),
				csumOffset: binary.NativeEndian.Uint16(b[8:]), pkt: bytes.Clone(b[10:])})
		}
	}
	return rc, w, read
}

// checkSuperpacket checks that f is the GSO superpacket of the segments
// orig (copies of the packets as built): the first one's headers, the
// payloads of all in order, a header for the kernel to segment it.
func checkSuperpacket(t *testing.T, f frame, orig [][]byte, v6 bool) {
	t.Helper()
	ipLen, gso := 20, byte(1)
	if v6 {
		ipLen, gso = 40, 4
	}
	hdrLen := ipLen + 32
	mss := len(orig[0]) - hdrLen
	want := bytes.Clone(orig[0][:hdrLen])
	for _, p := range orig {
		want = append(want, p[hdrLen:]...)
	}
	if f.flags != 1 || f.gso != gso || int(f.hdrLen) != hdrLen || int(f.gsoSize) != mss || int(f.csumStart) != ipLen || f.csumOffset != 16 {
		t.Fatalf("virtio header %+v, want NEEDS_CSUM, gso %d, hdrLen %d, gsoSize %d, csum at %d+16", f, gso, hdrLen, mss, ipLen)
	}
	if len(f.pkt) != len(want) || !bytes.Equal(f.pkt[hdrLen:], want[hdrLen:]) {
		t.Fatalf("superpacket of %d bytes, want %d: payloads not the segments' in order", len(f.pkt), len(want))
	}
	p := f.pkt
	if v6 {
		if int(binary.BigEndian.Uint16(p[4:])) != len(p)-40 || !bytes.Equal(p[6:40], want[6:40]) {
			t.Fatalf("IPv6 header %x, want payload length %d and the first segment's", p[:40], len(p)-40)
		}
		if got, w := binary.BigEndian.Uint16(p[ipLen+16:]), tundev.PseudoHeaderSumIPv6(p, 6, len(p)-ipLen); got != w {
			t.Fatalf("TCP checksum field %#x, want the pseudo-header sum %#x", got, w)
		}
	} else {
		if int(binary.BigEndian.Uint16(p[2:])) != len(p) || tundev.Checksum(p[:20]) != 0 {
			t.Fatalf("IPv4 header %x: total length or header checksum wrong", p[:20])
		}
		if got, w := binary.BigEndian.Uint16(p[ipLen+16:]), tundev.PseudoHeaderSum(p, 6, len(p)-ipLen); got != w {
			t.Fatalf("TCP checksum field %#x, want the pseudo-header sum %#x", got, w)
		}
	}
	if !bytes.Equal(p[ipLen:ipLen+13], want[ipLen:ipLen+13]) || !bytes.Equal(p[ipLen+14:ipLen+16], want[ipLen+14:ipLen+16]) || !bytes.Equal(p[ipLen+18:hdrLen], want[ipLen+18:hdrLen]) {
		t.Fatalf("TCP header %x, want the first segment's %x", p[ipLen:hdrLen], want[ipLen:hdrLen])
	}
	lastFlags := orig[len(orig)-1][ipLen+13]
	if p[ipLen+13] != want[ipLen+13]|lastFlags&tPSH {
		t.Fatalf("TCP flags %#x, want the first's with the last's PSH", p[ipLen+13])
	}
}

// checkSingle checks that f is the packet orig written alone, unchanged.
func checkSingle(t *testing.T, f frame, orig []byte) {
	t.Helper()
	if f.flags != 0 || f.gso != 0 || f.hdrLen != 0 || f.gsoSize != 0 || f.csumStart != 0 || f.csumOffset != 0 {
		t.Fatalf("virtio header %+v of a single packet with its checksum: want all zero", f)
	}
	if !bytes.Equal(f.pkt, orig) {
		t.Fatalf("single packet changed:\n got %x\nwant %x", f.pkt, orig)
	}
}

func pktCopies(bufs [][]byte) [][]byte {
	out := make([][]byte, len(bufs))
	for i, b := range bufs {
		out[i] = bytes.Clone(b[wgOffset:])
	}
	return out
}

func TestTCPWriteTUNCoalescesRuns(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		rc, _, read := seqpacketTUN(t)
		lib := &fakeLib{}
		w := newTCPWriteTUN(lib, rc)
		// Flow A: 4 segments (the last shorter, with PSH); flow B's
		// segment; a UDP datagram; an ICMP message; flow A again, 3
		// segments, not after the first run (B in between): a run of its own.
		a := run(seg{v6: v6, seq: 1000}, 4, 1388, 700)
		a[3] = seg{v6: v6, seq: 1000 + 3*1388, flags: tACK | tPSH, payload: 700}.build()
		b := seg{v6: v6, sport: 40001, seq: 7, payload: 1388}.build()
		u := seg{v6: v6, proto: 17, payload: 300}.build()
		ic := seg{proto: 1, payload: 56}.build()
		a2 := run(seg{v6: v6, seq: 1000 + 3*1388 + 700}, 3, 1388, 1388)
		bufs := append(append(append([][]byte{}, a...), b, u, ic), a2...)
		orig := pktCopies(bufs)
		n, err := w.Write(bufs, wgOffset)
		if n != len(bufs) || err != nil {
			t.Fatalf("v6=%v: Write = %d, %v; want %d, nil", v6, n, err, len(bufs))
		}
		frames := read()
		if len(frames) != 3 {
			t.Fatalf("v6=%v: %d frames written to the TUN, want 3 (run A, B, run A2)", v6, len(frames))
		}
		checkSuperpacket(t, frames[0], orig[:4], v6)
		checkSingle(t, frames[1], orig[4])
		checkSuperpacket(t, frames[2], orig[7:], v6)
		if len(lib.got) != 2 || &lib.got[0][0] != &u[0] || &lib.got[1][0] != &ic[0] || len(lib.offsets) != 1 || lib.offsets[0] != wgOffset {
			t.Fatalf("v6=%v: the library's Write got %d buffers at offsets %v, want the UDP and ICMP buffers themselves at %d", v6, len(lib.got), lib.offsets, wgOffset)
		}
		if !bytes.Equal(lib.got[0][wgOffset:], orig[5]) || !bytes.Equal(lib.got[1][wgOffset:], orig[6]) {
			t.Fatalf("v6=%v: the library's packets were changed", v6)
		}
	}
}

func TestTCPWriteTUNDoesNotCoalesce(t *testing.T) {
	first := seg{seq: 1000, payload: 1000}
	next := seg{seq: 2000, payload: 1000}
	cases := []struct {
		name   string
		second func(s seg) []byte
		frames int // frames for the pair; 1 when the second is not TCP
	}{
		{"other flow", func(s seg) []byte { s.sport++; return s.build() }, 2},
		{"other family", func(s seg) []byte { s.v6 = true; return s.build() }, 2},
		{"seq gap", func(s seg) []byte { s.seq += 1; return s.build() }, 2},
		{"retransmission", func(s seg) []byte { s.seq = 1000; return s.build() }, 2},
		{"larger payload", func(s seg) []byte { s.payload = 1100; return s.build() }, 2},
		{"other ack", func(s seg) []byte { s.ack = 99; return s.build() }, 2},
		{"other option", func(s seg) []byte { s.tsval = 5; return s.build() }, 2},
		{"other TTL", func(s seg) []byte { s.ttl = 3; return s.build() }, 2},
		{"SYN", func(s seg) []byte { s.flags = tSYN | tACK; return s.build() }, 2},
		{"FIN", func(s seg) []byte { s.flags = tFIN | tACK; return s.build() }, 2},
		{"RST", func(s seg) []byte { s.flags = tRST | tACK; return s.build() }, 2},
		{"URG", func(s seg) []byte { s.flags = tURG | tACK; return s.build() }, 2},
		{"no payload", func(s seg) []byte { s.payload = 0; return s.build() }, 2},
		{"IPv4 options", func(s seg) []byte {
			b := s.build()
			p := b[wgOffset:]
			q := append(append(append([]byte{}, b[:wgOffset+20]...), 1, 1, 1, 1), p[20:]...) // four NOPs
			q[wgOffset] = 0x46
			binary.BigEndian.PutUint16(q[wgOffset+2:], uint16(len(q)-wgOffset))
			q[wgOffset+10], q[wgOffset+11] = 0, 0
			binary.BigEndian.PutUint16(q[wgOffset+10:], tundev.Checksum(q[wgOffset:wgOffset+24]))
			return q
		}, 2},
		{"fragment", func(s seg) []byte {
			b := s.build()
			binary.BigEndian.PutUint16(b[wgOffset+6:], 0x2000) // MF
			return b
		}, 2},
		{"UDP", func(s seg) []byte { s.proto = 17; return s.build() }, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rc, _, read := seqpacketTUN(t)
			lib := &fakeLib{}
			w := newTCPWriteTUN(lib, rc)
			bufs := [][]byte{first.build(), c.second(next)}
			orig := pktCopies(bufs)
			if n, err := w.Write(bufs, wgOffset); n != 2 || err != nil {
				t.Fatalf("Write = %d, %v; want 2, nil", n, err)
			}
			frames := read()
			if len(frames) != c.frames {
				t.Fatalf("%d frames, want %d", len(frames), c.frames)
			}
			checkSingle(t, frames[0], orig[0])
			if c.frames == 2 {
				checkSingle(t, frames[1], orig[1])
				if len(lib.got) != 0 {
					t.Fatalf("the library got %d packets, want none", len(lib.got))
				}
			} else if len(lib.got) != 1 || !bytes.Equal(lib.got[0][wgOffset:], orig[1]) {
				t.Fatalf("the library got %d packets, want the UDP one", len(lib.got))
			}
		})
	}
}

func TestTCPWriteTUNCountsFailures(t *testing.T) {
	t.Run("library error", func(t *testing.T) {
		rc, _, _ := seqpacketTUN(t)
		lib := &fakeLib{err: errors.New("no buffer space")}
		w := newTCPWriteTUN(lib, rc)
		bufs := append(run(seg{seq: 1}, 3, 1000, 1000), seg{proto: 17, payload: 10}.build())
		n, err := w.Write(bufs, wgOffset)
		if n != 3 || err == nil || !errors.Is(err, lib.err) {
			t.Fatalf("Write = %d, %v; want 3 (the TCP run) and the library's error", n, err)
		}
	})
	t.Run("write error", func(t *testing.T) {
		rc, _, _ := seqpacketTUN(t)
		lib := &fakeLib{}
		w := newTCPWriteTUN(lib, rc)
		big := seg{seq: 1, payload: 1000}.build()
		// A frame larger than the socket can take fails (ENOBUFS or
		// EMSGSIZE): the stand-in for a write the TUN refuses.
		bufs := [][]byte{append(big, make([]byte, 5<<20)...), seg{proto: 17, payload: 10}.build(), seg{sport: 9, seq: 1, payload: 10}.build()}
		n, err := w.Write(bufs, wgOffset)
		var errno unix.Errno
		if n != 2 || !errors.As(err, &errno) {
			t.Fatalf("Write = %d, %v; want 2 (UDP and the second TCP) and the write's errno", n, err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		rc, f, _ := seqpacketTUN(t)
		lib := &fakeLib{}
		w := newTCPWriteTUN(lib, rc)
		f.Close()
		n, err := w.Write(run(seg{seq: 1}, 3, 1000, 1000), wgOffset)
		if n != 0 || !errors.Is(err, os.ErrClosed) {
			t.Fatalf("Write on a closed TUN = %d, %v; want 0, os.ErrClosed", n, err)
		}
	})
}

// devNull stands in for the TUN's descriptor where only allocations count.
func devNull(t *testing.T) (*os.File, syscall.RawConn) {
	t.Helper()
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("open %s: %v", os.DevNull, err)
	}
	t.Cleanup(func() { f.Close() })
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatalf("raw conn: %v", err)
	}
	return f, rc
}

// batch is a device batch of 128: two flows' runs of 46 segments (a TSO
// superpacket each), IPv6 runs, single TCP packets and UDP.
func batch() [][]byte {
	var bufs [][]byte
	bufs = append(bufs, run(seg{seq: 1}, 46, 1388, 1388)...)
	bufs = append(bufs, run(seg{sport: 2, seq: 1}, 46, 1388, 1388)...)
	bufs = append(bufs, run(seg{v6: true, seq: 1}, 30, 1368, 1368)...)
	bufs = append(bufs, seg{proto: 17, payload: 100}.build(), seg{flags: tSYN, seq: 5}.build(), seg{v6: true, proto: 17, payload: 1200}.build(),
		seg{flags: tACK, sport: 7}.build(), seg{proto: 1, payload: 56}.build(), seg{sport: 8, payload: 10}.build())
	return bufs
}

func TestTCPWriteTUNZeroAllocs(t *testing.T) {
	_, rc := devNull(t)
	lib := &fakeLib{got: make([][]byte, 0, 128), offsets: make([]int, 0, 8)}
	w := newTCPWriteTUN(lib, rc)
	bufs := batch()
	if len(bufs) != 128 {
		t.Fatalf("batch of %d", len(bufs))
	}
	pristine := pktCopies(bufs)
	restore := func() {
		for i, p := range pristine {
			copy(bufs[i][wgOffset:], p)
		}
		lib.got, lib.offsets = lib.got[:0], lib.offsets[:0]
	}
	allocs := testing.AllocsPerRun(100, func() {
		restore()
		if n, err := w.Write(bufs, wgOffset); n != len(bufs) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per Write of %d packets, want 0", allocs, len(bufs))
	}
	if len(lib.got) != 3 {
		t.Fatalf("the library got %d packets, want the 3 UDP/ICMP ones", len(lib.got))
	}
}

// The device writes from one goroutine per peer.
func TestTCPWriteTUNConcurrentWrites(t *testing.T) {
	_, rc := devNull(t)
	w := newTCPWriteTUN(&nopLib{}, rc)
	var wg sync.WaitGroup
	for range 2 {
		bufs := run(seg{seq: 1}, 40, 1000, 1000)
		wg.Go(func() {
			for range 50 {
				if n, err := w.Write(bufs, wgOffset); n != len(bufs) || err != nil {
					t.Errorf("Write = %d, %v", n, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

type nopLib struct{ fakeLib }

func (l *nopLib) Write(bufs [][]byte, offset int) (int, error) { return 0, nil }

func TestWithTCPWriterNeedsVnetHeader(t *testing.T) {
	f, _ := devNull(t)
	lib := &fakeLib{file: f}
	got, err := withTCPWriter(lib)
	if got != tun.Device(lib) || !errors.Is(err, errNoVnetHeader) {
		t.Fatalf("withTCPWriter on a file without IFF_VNET_HDR = %T, %v; want the library's device itself and errNoVnetHeader", got, err)
	}
}
