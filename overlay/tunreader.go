package overlay

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// tunReader reads the TUN device file itself when it carries virtio-net
// headers: it splits GSO superpackets without computing the TCP checksum of
// every segment (splitGSO marks them partial instead), and after the first
// (blocking) read of a batch it drains the device without blocking, so one
// wakeup handles many small packets (it stops after a superpacket). Owned by the TX reader goroutine.
type tunReader struct {
	rc syscall.RawConn

	// state of the read in progress (method values below avoid a closure per read)
	dst   []byte
	got   int
	err   error
	block func(fd uintptr) bool
	try   func(fd uintptr) bool

	pending    []byte // a superpacket (virtio header first) that did not fit the previous batch
	pendingLen int
}

func newTUNReader(f *os.File) (*tunReader, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("TUN raw conn: %w", err)
	}
	r := &tunReader{rc: rc, pending: make([]byte, virtioNetHdrLen+maxIPv4Packet)}
	r.block = r.readBlocking
	r.try = r.readOnce
	return r, nil
}

func (r *tunReader) readOnce(fd uintptr) bool {
	r.got, r.err = readNonblocking(int(fd), r.dst)
	return true
}

func (r *tunReader) readBlocking(fd uintptr) bool {
	r.got, r.err = readNonblocking(int(fd), r.dst)
	return r.err != unix.EAGAIN
}

// read fills p.bufs/p.sizes/p.partial with inner packets and returns how
// many. Packets the kernel hands over malformed are dropped (tally).
func (r *tunReader) read(p *txPath) (int, error) {
	n := 0
	if r.pendingLen > 0 {
		k := r.take(r.pending[:r.pendingLen], p, 0)
		r.pendingLen = 0
		n += k
	}
	for n < len(p.bufs) {
		r.dst = p.bufs[n][bufOffset-virtioNetHdrLen:]
		fn := r.try
		if n == 0 {
			fn = r.block
		}
		if err := r.rc.Read(fn); err != nil {
			return n, err
		}
		if r.err == unix.EAGAIN && n > 0 {
			break
		}
		if r.err != nil {
			if errors.Is(r.err, unix.EBADFD) {
				return n, os.ErrClosed
			}
			return n, fmt.Errorf("read TUN: %w", r.err)
		}
		if r.got < virtioNetHdrLen {
			p.tally.drop(DropTruncated)
			continue
		}
		frame := p.bufs[n][bufOffset-virtioNetHdrLen : bufOffset-virtioNetHdrLen+r.got]
		if frame[1] != virtioNetHdrGSONone {
			if gsoSegmentsAtMost(frame) > len(p.bufs)-n && n > 0 {
				r.pendingLen = copy(r.pending, frame)
				break
			}
		}
		gso := frame[1] != virtioNetHdrGSONone
		n += r.take(frame, p, n)
		if gso {
			// A superpacket is a batch's worth already: hand it to the sender
			// now rather than hold it while draining (measured: holding
			// slowed single-stream TCP by ~10%).
			break
		}
	}
	return n, nil
}

// gsoSegmentsAtMost bounds how many segments the GSO frame splits into (it
// counts the headers as payload), or 0 when gso_size is 0 (malformed).
func gsoSegmentsAtMost(frame []byte) int {
	h := readVirtioHeader(frame)
	if h.gsoSize == 0 {
		return 0
	}
	return (len(frame) - virtioNetHdrLen + int(h.gsoSize) - 1) / int(h.gsoSize)
}

// take turns one frame (virtio header + packet) into packets at p.bufs[at:]
// and returns how many.
func (r *tunReader) take(frame []byte, p *txPath, at int) int {
	h := readVirtioHeader(frame)
	pkt := frame[virtioNetHdrLen:]
	if h.gsoType == virtioNetHdrGSONone {
		if &frame[0] != &p.bufs[at][bufOffset-virtioNetHdrLen] {
			copy(p.bufs[at][bufOffset:], pkt)
			pkt = p.bufs[at][bufOffset : bufOffset+len(pkt)]
		}
		p.sizes[at] = len(pkt)
		p.partial[at] = false
		if h.flags&virtioNetHdrFNeedsCsum != 0 {
			cs, off := int(h.csumStart), int(h.csumOffset)
			if cs+off+2 > len(pkt) {
				p.tally.drop(DropTruncated)
				return 0
			}
			if len(pkt) > ipv4HeaderLen && pkt[9] == protoTCP && off == tcpCsumOffset && cs == int(pkt[0]&0x0f)*4 {
				p.partial[at] = true
			} else {
				completeChecksumAt(pkt[cs:], off)
			}
		}
		return 1
	}
	n, _, ok := splitGSO(pkt, h, p.bufs[at:], p.sizes[at:], p.partial[at:])
	if !ok {
		p.tally.drop(DropTruncated)
		return 0
	}
	return n
}

// completeChecksumAt finishes a checksum whose field at off holds the
// pseudo-header sum (any protocol: 0 stays as computed except for UDP).
func completeChecksumAt(l4 []byte, off int) {
	if off == udpCsumOffset {
		completeChecksum(l4, off)
		return
	}
	c := checksum(l4)
	l4[off], l4[off+1] = byte(c>>8), byte(c)
}

func readVirtioHeader(b []byte) virtioHeader {
	return virtioHeader{
		flags:      b[0],
		gsoType:    b[1],
		hdrLen:     nativeUint16(b[2:]),
		gsoSize:    nativeUint16(b[4:]),
		csumStart:  nativeUint16(b[6:]),
		csumOffset: nativeUint16(b[8:]),
	}
}
