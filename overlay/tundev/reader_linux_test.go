package tundev

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// seqpacketPair stands in for the TUN device file: a SOCK_SEQPACKET pair
// keeps frame boundaries like the TUN and is pollable by the Go runtime.
func seqpacketPair(t *testing.T) (readEnd *os.File, writeFd int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	f := os.NewFile(uintptr(fds[0]), "tun-standin")
	t.Cleanup(func() { _ = f.Close(); _ = unix.Close(fds[1]) })
	return f, fds[1]
}

func TestTUNReaderDrainsAndSplits(t *testing.T) {
	f, w := seqpacketPair(t)
	r, err := newReader(f)
	if err != nil {
		t.Fatal(err)
	}
	p := newTestBatch()
	scratch := make([]byte, BufSize)
	small := make([]byte, virtioNetHdrLen+64)
	putUDP(small[virtioNetHdrLen:], 64)
	for range 3 {
		if _, err := unix.Write(w, small); err != nil {
			t.Fatal(err)
		}
	}
	frame := superpacketFrame(scratch, 4000, 1000, tcpFlagACK)
	if _, err := unix.Write(w, frame); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Write(w, small); err != nil {
		t.Fatal(err)
	}
	// One call drains the three small packets and splits the superpacket,
	// then stops (a superpacket is handed on at once).
	n, err := p.read(r)
	if err != nil || n != 7 {
		t.Fatalf("read = %d, %v; want 3 small + 4 segments", n, err)
	}
	for i := range 3 {
		if p.sizes[i] != 64 || p.partial[i] {
			t.Errorf("packet %d: size %d partial %v", i, p.sizes[i], p.partial[i])
		}
	}
	for i := 3; i < 7; i++ {
		if p.sizes[i] != 52+1000 || !p.partial[i] {
			t.Errorf("segment %d: size %d partial %v", i, p.sizes[i], p.partial[i])
		}
	}
	if n, err := p.read(r); err != nil || n != 1 || p.sizes[0] != 64 {
		t.Fatalf("second read = %d, %v (size %d); want the last small packet", n, err, p.sizes[0])
	}
}

func TestTUNReaderKeepsSuperpacketThatDoesNotFit(t *testing.T) {
	f, w := seqpacketPair(t)
	r, err := newReader(f)
	if err != nil {
		t.Fatal(err)
	}
	p := newTestBatch()
	small := make([]byte, virtioNetHdrLen+64)
	putUDP(small[virtioNetHdrLen:], 64)
	for range batchSize - 10 {
		if _, err := unix.Write(w, small); err != nil {
			t.Fatal(err)
		}
	}
	frame := superpacketFrame(make([]byte, BufSize), 20*1000, 1000, tcpFlagACK) // 20 segments, 10 buffers left
	if _, err := unix.Write(w, frame); err != nil {
		t.Fatal(err)
	}
	if n, err := p.read(r); err != nil || n != batchSize-10 {
		t.Fatalf("first read = %d, %v; want the %d small packets", n, err, batchSize-10)
	}
	if n, err := p.read(r); err != nil || n != 20 || !p.partial[19] || p.sizes[19] != 52+1000 {
		t.Fatalf("second read = %d, %v; want the kept superpacket's 20 segments", n, err)
	}
}

func TestTUNReaderZeroAllocs(t *testing.T) {
	f, w := seqpacketPair(t)
	r, err := newReader(f)
	if err != nil {
		t.Fatal(err)
	}
	p := newTestBatch()
	small := make([]byte, virtioNetHdrLen+64)
	putUDP(small[virtioNetHdrLen:], 64)
	frame := superpacketFrame(make([]byte, BufSize), 30000, 1400, tcpFlagACK)
	allocs := testing.AllocsPerRun(50, func() {
		_, _ = unix.Write(w, small)
		_, _ = unix.Write(w, small)
		_, _ = unix.Write(w, frame)
		if n, err := p.read(r); err != nil || n != 2+22 {
			panic("unexpected read")
		}
	})
	if allocs != 0 {
		t.Fatalf("reader.read allocates %.1f times per batch", allocs)
	}
}

// testBatch is a batch of buffers as a forwarding loop holds them.
type testBatch struct {
	bufs      [][]byte
	sizes     []int
	partial   []bool
	tails     [][]byte
	malformed int
}

func newTestBatch() *testBatch {
	return &testBatch{bufs: newBuffers(batchSize), sizes: make([]int, batchSize), partial: make([]bool, batchSize), tails: make([][]byte, batchSize)}
}

func (p *testBatch) read(r *reader) (int, error) {
	n, bad, err := r.read(p.bufs, p.sizes, p.partial, p.tails)
	p.malformed += bad
	return n, err
}

func TestReaderCountsMalformedFrames(t *testing.T) {
	f, w := seqpacketPair(t)
	r, err := newReader(f)
	if err != nil {
		t.Fatal(err)
	}
	p := newTestBatch()
	small := make([]byte, virtioNetHdrLen+64)
	putUDP(small[virtioNetHdrLen:], 64)
	bad := superpacketFrame(make([]byte, BufSize), 4000, 1000, tcpFlagACK)
	bad[virtioNetHdrLen] = 0x60 // not IPv4: the split refuses it
	for _, frame := range [][]byte{small, {1, 2, 3}, bad, small} {
		if _, err := unix.Write(w, frame); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for n < 2 {
		k, err := p.read(r)
		if err != nil {
			t.Fatal(err)
		}
		n += k
	}
	if n != 2 || p.malformed != 2 {
		t.Fatalf("read %d packets, %d malformed; want 2 and 2", n, p.malformed)
	}
}

// TestWriterWritesSuperpacketsWithoutCopy writes a run of segments and a
// lone FIN through writev into a SOCK_SEQPACKET stand-in for the TUN and
// checks the frames the "kernel" gets.
func TestWriterWritesSuperpacketsWithoutCopy(t *testing.T) {
	f, peer := seqpacketPair(t)
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	w := newWriterOn(rc, nil, true, batchSize)
	pkts := segmentBatch(5, 1000, 1000)
	pkts[4][ipv4HeaderLen+tcpFlagsOffset] = tcpFlagACK | tcpFlagFIN // ends the run, written alone
	partial := make([]bool, 5)
	if failed, err := w.write(pkts, partial); err != nil || failed != 0 {
		t.Fatalf("write = %d failed, %v", failed, err)
	}
	buf := make([]byte, 70000)
	n, err := unix.Read(peer, buf)
	if err != nil {
		t.Fatal(err)
	}
	h := readVirtioHeader(buf)
	super := buf[virtioNetHdrLen:n]
	if h.gsoType != virtioNetHdrGSOTCPv4 || h.gsoSize != 1000 || len(super) != 52+4*1000 {
		t.Fatalf("first frame: virtio %+v, %d bytes; want a 4-segment superpacket", h, len(super))
	}
	for i, b := range super[52:] {
		if b != byte(1000+i) {
			t.Fatalf("superpacket payload byte %d = %d, want %d", i, b, byte(1000+i))
		}
	}
	if n, err = unix.Read(peer, buf); err != nil || n != virtioNetHdrLen+len(pkts[4]) || readVirtioHeader(buf).gsoType != virtioNetHdrGSONone {
		t.Fatalf("second frame: %d bytes, %v; want the FIN alone", n, err)
	}
}

// TestTUNReaderReportsEmpty: a read that finds the device empty is
// reported once (the AQM's measure of a standing queue); reads that never
// find it empty are not.
func TestTUNReaderReportsEmpty(t *testing.T) {
	f, w := seqpacketPair(t)
	r, err := newReader(f)
	if err != nil {
		t.Fatal(err)
	}
	p := newTestBatch()
	scratch := make([]byte, BufSize)
	frame := superpacketFrame(scratch, 4000, 1000, tcpFlagACK)
	// Two superpackets queued: the first read hands one on without trying
	// another, so it has not found the device empty.
	for range 2 {
		if _, err := unix.Write(w, frame); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := p.read(r); err != nil || n != 4 {
		t.Fatalf("read = %d, %v; want 4 segments", n, err)
	}
	if r.takeEmpty() {
		t.Fatal("reported empty with a superpacket still queued")
	}
	// Small packets are drained until a read finds the device empty.
	small := make([]byte, virtioNetHdrLen+64)
	putUDP(small[virtioNetHdrLen:], 64)
	if _, err := unix.Write(w, small); err != nil {
		t.Fatal(err)
	}
	if n, err := p.read(r); err != nil || n != 4 {
		t.Fatalf("read = %d, %v; want the second superpacket's 4 segments", n, err)
	}
	if n, err := p.read(r); err != nil || n != 1 {
		t.Fatalf("read = %d, %v; want the small packet", n, err)
	}
	if !r.takeEmpty() {
		t.Fatal("the drain that ended in EAGAIN was not reported")
	}
	if r.takeEmpty() {
		t.Fatal("reported twice")
	}
	// A blocking read that waits first reports it too.
	go func() { _, _ = unix.Write(w, small) }()
	if n, err := p.read(r); err != nil || n != 1 {
		t.Fatalf("read = %d, %v; want the small packet", n, err)
	}
	if !r.takeEmpty() {
		t.Fatal("a read that waited for the device was not reported")
	}
}
