package tundev

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// reader reads the TUN device file itself when it carries virtio-net
// headers: it splits GSO superpackets without computing the TCP checksum of
// every segment (splitGSO marks them partial instead), and after the first
// (blocking) read of a batch it drains the device without blocking, so one
// wakeup handles many small packets (it stops after a superpacket). Owned by one
// reading goroutine.
type reader struct {
	rc syscall.RawConn

	// state of the read in progress (method values below avoid a closure per read)
	dst   []byte
	got   int
	err   error
	block func(fd uintptr) bool
	try   func(fd uintptr) bool

	pending    []byte // a superpacket (virtio header first) that did not fit the previous batch
	pendingLen int

	empty bool // a read found the device empty since the last takeEmpty
}

// takeEmpty says whether a read found the device empty since the last call.
func (r *reader) takeEmpty() bool {
	e := r.empty
	r.empty = false
	return e
}

func newReader(f *os.File) (*reader, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("TUN raw conn: %w", err)
	}
	r := &reader{rc: rc, pending: make([]byte, virtioNetHdrLen+BufSize-Headroom)}
	r.block = r.readBlocking
	r.try = r.readOnce
	return r, nil
}

func (r *reader) readOnce(fd uintptr) bool {
	r.got, r.err = readNonblocking(int(fd), r.dst)
	if r.err == unix.EAGAIN {
		r.empty = true
	}
	return true
}

func (r *reader) readBlocking(fd uintptr) bool {
	r.got, r.err = readNonblocking(int(fd), r.dst)
	if r.err == unix.EAGAIN {
		r.empty = true
		return false
	}
	return true
}

// read fills bufs/sizes/partial/tails with packets (each at
// bufs[i][Headroom:], followed by tails[i] when that is not empty, see
// splitGSO) and returns how many, and how many frames the kernel handed over
// malformed (dropped).
func (r *reader) read(bufs [][]byte, sizes []int, partial []bool, tails [][]byte) (n, malformed int, err error) {
	if r.pendingLen > 0 {
		// Copied, not viewed: r.pending is reused while this batch may still
		// wait to be sent.
		k, bad := r.take(r.pending[:r.pendingLen], bufs, sizes, partial, tails, 0)
		r.pendingLen = 0
		n += k
		malformed += bad
	}
	for n < len(bufs) {
		r.dst = bufs[n][Headroom-virtioNetHdrLen:]
		fn := r.try
		if n == 0 {
			fn = r.block
		}
		if err := r.rc.Read(fn); err != nil {
			return n, malformed, err
		}
		if r.err == unix.EAGAIN && n > 0 {
			break
		}
		if r.err != nil {
			if errors.Is(r.err, unix.EBADFD) {
				return n, malformed, os.ErrClosed
			}
			return n, malformed, fmt.Errorf("read TUN: %w", r.err)
		}
		if r.got < virtioNetHdrLen {
			malformed++
			continue
		}
		frame := bufs[n][Headroom-virtioNetHdrLen : Headroom-virtioNetHdrLen+r.got]
		gso := frame[1] != virtioNetHdrGSONone
		if gso && gsoSegmentsAtMost(frame) > len(bufs)-n && n > 0 {
			r.pendingLen = copy(r.pending, frame)
			break
		}
		k, bad := r.take(frame, bufs, sizes, partial, tails, n)
		n += k
		malformed += bad
		if gso {
			// A superpacket is a batch's worth already: hand it on now
			// rather than hold it while draining (measured: holding slowed
			// single-stream TCP by ~10%).
			break
		}
	}
	return n, malformed, nil
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

// take turns one frame (virtio header + packet) into packets at bufs[at:]
// and returns how many, and 1 when the frame is malformed.
func (r *reader) take(frame []byte, bufs [][]byte, sizes []int, partial []bool, tails [][]byte, at int) (int, int) {
	h := readVirtioHeader(frame)
	pkt := frame[virtioNetHdrLen:]
	if h.gsoType == virtioNetHdrGSONone {
		if &frame[0] != &bufs[at][Headroom-virtioNetHdrLen] {
			copy(bufs[at][Headroom:], pkt)
			pkt = bufs[at][Headroom : Headroom+len(pkt)]
		}
		sizes[at] = len(pkt)
		partial[at] = false
		tails[at] = nil
		if h.flags&virtioNetHdrFNeedsCsum != 0 {
			cs, off := int(h.csumStart), int(h.csumOffset)
			if cs+off+2 > len(pkt) {
				return 0, 1
			}
			if l4, proto, ok := l4Offset(pkt); ok && proto == protoTCP && off == tcpCsumOffset && cs == l4 {
				partial[at] = true
			} else {
				completeChecksumAt(pkt[cs:], off)
			}
		}
		return 1, 0
	}
	n, _, ok := splitGSO(pkt, h, bufs[at:], sizes[at:], partial[at:], tails[at:])
	if !ok {
		return 0, 1
	}
	return n, 0
}
