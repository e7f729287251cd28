package tundev

import (
	"bytes"
	"testing"

	"golang.org/x/sys/unix"
)

// TestWriterWritesICMPItself: an ICMP packet goes out in weft's own writev
// (virtio header with no offload, then the packet), not through the library
// (nil here: using it would panic), and without allocating.
func TestWriterWritesICMPItself(t *testing.T) {
	f, peer := seqpacketPair(t)
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	w := newWriterOn(rc, nil, true, batchSize)
	icmp := make([]byte, 84)
	icmp[0], icmp[9] = 0x45, 1 // IPv4, protocol ICMP
	for i := ipv4HeaderLen; i < len(icmp); i++ {
		icmp[i] = byte(i)
	}
	frame := make([]byte, 256)
	allocs := testing.AllocsPerRun(20, func() {
		if bad, err := w.write([][]byte{icmp}, []bool{false}); bad != 0 || err != nil {
			panic("ICMP write failed")
		}
		n, err := unix.Read(peer, frame)
		if err != nil || n != virtioNetHdrLen+len(icmp) {
			panic("frame not written")
		}
	})
	if allocs != 0 {
		t.Fatalf("writing ICMP allocates %.1f times", allocs)
	}
	if !bytes.Equal(frame[:virtioNetHdrLen], make([]byte, virtioNetHdrLen)) {
		t.Fatalf("virtio header % x, want zeros (no offload)", frame[:virtioNetHdrLen])
	}
	if !bytes.Equal(frame[virtioNetHdrLen:virtioNetHdrLen+len(icmp)], icmp) {
		t.Fatal("packet changed on the way")
	}
}

// TestWriterWritesLoneUDPItself: a batch holding one UDP packet has nothing
// to coalesce and goes out in weft's own writev too (the library is nil).
func TestWriterWritesLoneUDPItself(t *testing.T) {
	f, peer := seqpacketPair(t)
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	w := newWriterOn(rc, nil, true, batchSize)
	udp := putUDP(make([]byte, 100), 100)
	if bad, err := w.write([][]byte{udp}, []bool{false}); bad != 0 || err != nil {
		t.Fatalf("write = %d, %v", bad, err)
	}
	frame := make([]byte, 256)
	n, err := unix.Read(peer, frame)
	if err != nil || n != virtioNetHdrLen+len(udp) {
		t.Fatalf("read %d, %v", n, err)
	}
	if !bytes.Equal(frame[:virtioNetHdrLen], make([]byte, virtioNetHdrLen)) || !bytes.Equal(frame[virtioNetHdrLen:n], udp) {
		t.Fatalf("frame % x", frame[:n])
	}
}
