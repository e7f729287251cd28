package overlay

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// tunWriter writes a batch of decapsulated inner packets (each at
// buf[bufOffset:]) into the TUN. When the TUN carries virtio-net headers, TCP
// segments are written here directly to the device file, in order: runs of
// segments of one flow as one GSO superpacket (coalesceRun), everything else
// TCP as a single packet with an empty virtio header. Non-TCP packets go
// through the tun library's Write (which coalesces UDP). Without virtio
// headers everything goes through the library. Owned by the RX loop.
type tunWriter struct {
	dev    tun.Device
	file   *os.File
	vnet   bool     // the TUN expects a virtio-net header in front of every packet
	others [][]byte // non-TCP packets of the batch, for the library
}

func newTUNWriter(dev tun.Device) *tunWriter {
	return &tunWriter{
		dev:    dev,
		file:   dev.File(),
		vnet:   hasVnetHeader(dev.File()),
		others: make([][]byte, 0, batchSize),
	}
}

// hasVnetHeader reports whether the TUN device file was opened with IFF_VNET_HDR.
func hasVnetHeader(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	var flags uint16
	var ioErr error
	if err := rc.Control(func(fd uintptr) {
		ifr, err := unix.NewIfreq("")
		if err != nil {
			ioErr = err
			return
		}
		if ioErr = unix.IoctlIfreq(int(fd), unix.TUNGETIFF, ifr); ioErr == nil {
			flags = ifr.Uint16()
		}
	}); err != nil || ioErr != nil {
		return false
	}
	return flags&unix.IFF_VNET_HDR != 0
}

// write writes pkts into the TUN, counting failed writes in tally. It returns
// an error only when the device is closed.
func (w *tunWriter) write(pkts [][]byte, partial []bool, tally *batchTally) error {
	if !w.vnet {
		for i, pkt := range pkts {
			if partial[i] {
				ip := pkt[bufOffset:]
				ihl := int(ip[0]&0x0f) * 4
				completeChecksumAt(ip[ihl:], tcpCsumOffset)
			}
		}
		return w.writeLibrary(pkts, tally)
	}
	w.others = w.others[:0]
	for i := 0; i < len(pkts); {
		pkt := pkts[i][bufOffset:]
		if len(pkt) < ipv4HeaderLen || pkt[9] != protoTCP {
			w.others = append(w.others, pkts[i])
			i++
			continue
		}
		seg, ok := parseCoalescable(pkt)
		if !ok {
			b := pkts[i][bufOffset-virtioNetHdrLen:]
			putSingleVirtioHeader(b, partial[i])
			if err := w.writeFile(b, tally); err != nil {
				return err
			}
			i++
			continue
		}
		segs, total, mss, lastFlags := coalesceRun(pkts[i:], seg)
		buf := pkts[i][:bufOffset+total]
		vhdr := buf[bufOffset-virtioNetHdrLen : bufOffset]
		if segs == 1 {
			putSingleVirtioHeader(buf[bufOffset-virtioNetHdrLen:], partial[i])
		} else {
			finishSuperpacket(vhdr, buf[bufOffset:], seg.hdrLen, mss, lastFlags)
		}
		if err := w.writeFile(buf[bufOffset-virtioNetHdrLen:], tally); err != nil {
			return err
		}
		i += segs
	}
	return w.writeLibrary(w.others, tally)
}

// writeFile writes one packet, virtio-net header included, to the device file.
func (w *tunWriter) writeFile(b []byte, tally *batchTally) error {
	if _, err := w.file.Write(b); err != nil {
		if errors.Is(err, os.ErrClosed) || errors.Is(err, syscall.EBADFD) {
			return fmt.Errorf("write TUN: %w", os.ErrClosed)
		}
		tally.drop(DropTUNWriteError)
	}
	return nil
}

func (w *tunWriter) writeLibrary(pkts [][]byte, tally *batchTally) error {
	if len(pkts) == 0 {
		return nil
	}
	if _, err := w.dev.Write(pkts, bufOffset); err != nil {
		if isStopError(err) {
			return err
		}
		tally.drop(DropTUNWriteError)
	}
	return nil
}

// putSingleVirtioHeader writes the virtio header of a single TCP packet at
// b[virtioNetHdrLen:]: no offloads, or NEEDS_CSUM when its checksum is partial.
func putSingleVirtioHeader(b []byte, partial bool) {
	if !partial {
		clear(b[:virtioNetHdrLen])
		return
	}
	putVirtioHeader(b, virtioHeader{
		flags:      virtioNetHdrFNeedsCsum,
		gsoType:    virtioNetHdrGSONone,
		csumStart:  uint16(b[virtioNetHdrLen]&0x0f) * 4,
		csumOffset: tcpCsumOffset,
	})
}
