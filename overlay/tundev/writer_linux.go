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
	rc      syscall.RawConn
	vnet    bool     // the TUN expects a virtio-net header in front of every packet
	staged  [][]byte // packets copied for the library: staging[k][:Headroom+len]
	staging [][]byte // BufSize buffers, allocated once

	vhdr [virtioNetHdrLen]byte
	iovs []unix.Iovec // one writev: header, first segment, up to 63 payloads
	// the writev in progress (fn is a method value made once: no closure per write)
	niov int
	err  unix.Errno
	fn   func(fd uintptr) bool
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
	w := &writer{dev: dev, rc: rc, vnet: vnet, staged: make([][]byte, 0, maxBatch),
		staging: make([][]byte, maxBatch), iovs: make([]unix.Iovec, 2+maxSegmentsPerWrite)}
	for i := range w.staging {
		w.staging[i] = make([]byte, BufSize)
	}
	w.fn = w.writev
	return w
}

// maxSegmentsPerWrite bounds a coalesced run (the kernel's GSO limit is far
// higher; 64 segments of any MSS already reach the 64 KiB IPv4 limit).
const maxSegmentsPerWrite = 64

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
		pkt := pkts[i]
		if off, proto, ok := l4Offset(pkt); !ok || proto != protoTCP || off+tcpMinHeaderLen > len(pkt) {
			w.stage(pkt)
			i++
			continue
		}
		segs := 1
		seg, ok := parseCoalescable(pkt)
		if ok {
			var total, mss int
			var lastFlags byte
			segs, total, mss, lastFlags = coalesceRun(pkts[i:min(len(pkts), i+maxSegmentsPerWrite)], seg)
			if segs > 1 {
				finishSuperpacket(w.vhdr[:], pkt, total, seg, mss, lastFlags)
				w.setIov(0, w.vhdr[:])
				w.setIov(1, pkt)
				for k := 1; k < segs; k++ {
					w.setIov(1+k, pkts[i+k][seg.hdrLen:])
				}
				w.niov = 1 + segs
			}
		}
		if segs == 1 {
			putSingleVirtioHeader(w.vhdr[:], pkt, partial[i])
			w.setIov(0, w.vhdr[:])
			w.setIov(1, pkt)
			w.niov = 2
		}
		bad, err := w.flush()
		if err != nil {
			return failed, err
		}
		failed += bad
		i += segs
	}
	bad, err := w.writeLibrary(w.staged)
	return failed + bad, err
}

// stage copies pkt behind Headroom bytes for the library.
func (w *writer) stage(pkt []byte) {
	b := w.staging[len(w.staged)]
	n := copy(b[Headroom:], pkt)
	w.staged = append(w.staged, b[:Headroom+n])
}

func (w *writer) setIov(i int, b []byte) {
	w.iovs[i].Base = unsafe.SliceData(b)
	w.iovs[i].SetLen(len(b))
}

// flush writes the prepared iovecs as one packet.
func (w *writer) flush() (int, error) {
	if err := w.rc.Write(w.fn); err != nil {
		return 0, fmt.Errorf("write TUN: %w", os.ErrClosed)
	}
	switch w.err {
	case 0:
		return 0, nil
	case unix.EBADFD, unix.EBADF:
		return 0, fmt.Errorf("write TUN: %w", os.ErrClosed)
	default:
		return 1, nil
	}
}

// writev runs inside RawConn.Write: false (wait for writability) on EAGAIN.
func (w *writer) writev(fd uintptr) bool {
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
