package tundev

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// writer writes a batch of bare packets (views into the receive buffers, no
// headroom) into the TUN. When the TUN carries virtio-net headers, TCP
// segments are written here directly to the device file with writev, in
// order and without copying: runs of segments of one flow as one GSO
// superpacket (virtio header, the first segment, the payloads of the others),
// everything else TCP as a single packet behind its own virtio header.
// Non-TCP packets are copied into headroom buffers for the tun library's
// Write (which coalesces UDP); without virtio headers every packet goes that
// way. Owned by one writing goroutine.
type writer struct {
	dev     tun.Device
	vnet    bool     // the TUN expects a virtio-net header in front of every packet
	staged  [][]byte // packets copied for the library: staging[k][:Headroom+len]
	staging [][]byte // BufSize buffers, allocated once
	tcp     *TCPWriter
}

func newWriter(dev tun.Device, vnet bool, maxBatch int) (*writer, error) {
	rc, err := dev.File().SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("TUN raw conn: %w", err)
	}
	return newWriterOn(rc, dev, vnet, maxBatch), nil
}

// newWriterOn writes through rc (the device file) and, for the library's
// part, dev.
func newWriterOn(rc syscall.RawConn, dev tun.Device, vnet bool, maxBatch int) *writer {
	w := &writer{dev: dev, vnet: vnet, staged: make([][]byte, 0, maxBatch),
		staging: make([][]byte, maxBatch), tcp: NewTCPWriter(rc)}
	for i := range w.staging {
		w.staging[i] = make([]byte, BufSize)
	}
	return w
}

// TCPWriter writes TCP packets into a TUN opened with IFF_VNET_HDR (its
// offloads on), directly to the device file with writev and without copying:
// a run of segments of one flow as one GSO superpacket (virtio header, the
// first segment, the payloads of the others), any other TCP packet alone
// behind its own virtio header. The kernel takes a superpacket like a locally
// built GSO packet (CHECKSUM_PARTIAL): it does not verify the checksums of
// the segments it was made of. Owned by one writing goroutine.
type TCPWriter struct {
	rc   syscall.RawConn
	vhdr [virtioNetHdrLen]byte
	iovs []unix.Iovec // one writev: header, first segment, up to 63 payloads
	// the writev in progress (fn is a method value made once: no closure per write)
	niov int
	err  unix.Errno
	fn   func(fd uintptr) bool
}

// maxSegmentsPerWrite bounds a coalesced run (the kernel's GSO limit is far
// higher; 64 segments of any MSS already reach the 64 KiB IPv4 limit).
const maxSegmentsPerWrite = 64

// NewTCPWriter writes through rc, the TUN device file's raw conn.
func NewTCPWriter(rc syscall.RawConn) *TCPWriter {
	w := &TCPWriter{rc: rc, iovs: make([]unix.Iovec, 2+maxSegmentsPerWrite)}
	w.fn = w.writev
	return w
}

// write writes pkts into the TUN and returns how many writes failed (a
// superpacket or a library batch counts once). It returns an error only when
// the device is closed.
func (w *writer) write(pkts [][]byte, partial []bool) (int, error) {
	if !w.vnet {
		for i, pkt := range pkts {
			if partial[i] {
				if off, _, ok := l4Offset(pkt); ok && off+tcpMinHeaderLen <= len(pkt) {
					completeChecksumAt(pkt[off:], tcpCsumOffset)
				}
			}
		}
		w.staged = w.staged[:0]
		for _, pkt := range pkts {
			w.stage(pkt)
		}
		return w.writeLibrary(w.staged)
	}
	failed := 0
	w.staged = w.staged[:0]
	for i := 0; i < len(pkts); {
		segs, err := w.tcp.WriteRun(pkts[i:], partial[i])
		if segs == 0 {
			w.stage(pkts[i])
			i++
			continue
		}
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return failed, err
			}
			failed++
		}
		i += segs
	}
	bad, err := w.writeLibrary(w.staged)
	return failed + bad, err
}

// WriteRun writes pkts[0] (a bare packet) and, coalesced with it into one
// superpacket, the packets after it that continue its run: same flow and
// headers, contiguous sequence numbers, the first one's payload size (only
// the last may be shorter), at most 64 segments and 64 KiB. It may rewrite
// the headers of pkts[0] when it coalesces. partial reports that pkts[0]'s
// TCP checksum field holds only the pseudo-header sum (used when it is
// written alone; coalesced segments need none: the superpacket's checksum is
// the kernel's).
//
// It returns how many of pkts it took: 0 when pkts[0] is not a TCP packet
// (or too short for its header), which the caller writes another way. The
// error wraps os.ErrClosed when the device is closed; any other error is
// the write's errno (a unix.Errno), and the segs packets it took are lost.
func (w *TCPWriter) WriteRun(pkts [][]byte, partial bool) (segs int, err error) {
	pkt := pkts[0]
	if off, proto, ok := l4Offset(pkt); !ok || proto != protoTCP || off+tcpMinHeaderLen > len(pkt) {
		return 0, nil
	}
	segs = 1
	if seg, ok := parseCoalescable(pkt); ok {
		var total, mss int
		var lastFlags byte
		segs, total, mss, lastFlags = coalesceRun(pkts[:min(len(pkts), maxSegmentsPerWrite)], seg)
		if segs > 1 {
			finishSuperpacket(w.vhdr[:], pkt, total, seg, mss, lastFlags)
			w.setIov(0, w.vhdr[:])
			w.setIov(1, pkt)
			for k := 1; k < segs; k++ {
				w.setIov(1+k, pkts[k][seg.hdrLen:])
			}
			w.niov = 1 + segs
		}
	}
	if segs == 1 {
		putSingleVirtioHeader(w.vhdr[:], pkt, partial)
		w.setIov(0, w.vhdr[:])
		w.setIov(1, pkt)
		w.niov = 2
	}
	return segs, w.flush()
}

// stage copies pkt behind Headroom bytes for the library.
func (w *writer) stage(pkt []byte) {
	b := w.staging[len(w.staged)]
	n := copy(b[Headroom:], pkt)
	w.staged = append(w.staged, b[:Headroom+n])
}

func (w *TCPWriter) setIov(i int, b []byte) {
	w.iovs[i].Base = unsafe.SliceData(b)
	w.iovs[i].SetLen(len(b))
}

// flush writes the prepared iovecs as one packet.
func (w *TCPWriter) flush() error {
	if err := w.rc.Write(w.fn); err != nil {
		return fmt.Errorf("write TUN: %w", os.ErrClosed)
	}
	switch w.err {
	case 0:
		return nil
	case unix.EBADFD, unix.EBADF:
		return fmt.Errorf("write TUN: %w", os.ErrClosed)
	default:
		return w.err // not wrapped: no allocation per failed write
	}
}

// writev runs inside RawConn.Write: false (wait for writability) on EAGAIN.
func (w *TCPWriter) writev(fd uintptr) bool {
	for {
		_, _, e := unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&w.iovs[0])), uintptr(w.niov))
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			w.err = e
			return true
		}
	}
}

func (w *writer) writeLibrary(pkts [][]byte) (int, error) {
	if len(pkts) == 0 {
		return 0, nil
	}
	if _, err := w.dev.Write(pkts, Headroom); err != nil {
		if errors.Is(err, os.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, err
		}
		return 1, nil
	}
	return 0, nil
}

// putSingleVirtioHeader writes into vhdr the virtio header of the single TCP
// packet pkt (IPv4 or IPv6, its TCP header checked by the caller): no
// offloads, or NEEDS_CSUM when its checksum is partial.
func putSingleVirtioHeader(vhdr, pkt []byte, partial bool) {
	off, _, _ := l4Offset(pkt)
	if !partial {
		clear(vhdr[:virtioNetHdrLen])
		return
	}
	putVirtioHeader(vhdr, virtioHeader{
		flags:      virtioNetHdrFNeedsCsum,
		gsoType:    virtioNetHdrGSONone,
		csumStart:  uint16(off),
		csumOffset: tcpCsumOffset,
	})
}
