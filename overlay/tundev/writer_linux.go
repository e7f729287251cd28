package tundev

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.zx2c4.com/wireguard/tun"
)

// writer writes a batch of packets (each at buf[Headroom:]) into the TUN.
// When the TUN carries virtio-net headers, TCP segments are written here
// directly to the device file, in order: runs of segments of one flow as one
// GSO superpacket (coalesceRun), everything else TCP as a single packet with
// an empty virtio header. Non-TCP packets go through the tun library's Write
// (which coalesces UDP). Without virtio headers everything goes through the
// library. Owned by one writing goroutine.
type writer struct {
	dev    tun.Device
	file   *os.File
	vnet   bool     // the TUN expects a virtio-net header in front of every packet
	others [][]byte // non-TCP packets of the batch, for the library
}

func newWriter(dev tun.Device, vnet bool, maxBatch int) *writer {
	return &writer{dev: dev, file: dev.File(), vnet: vnet, others: make([][]byte, 0, maxBatch)}
}

// write writes pkts into the TUN and returns how many writes failed (a
// superpacket or a library batch counts once). It returns an error only when
// the device is closed.
func (w *writer) write(pkts [][]byte, partial []bool) (int, error) {
	if !w.vnet {
		for i, pkt := range pkts {
			if partial[i] {
				ip := pkt[Headroom:]
				ihl := int(ip[0]&0x0f) * 4
				completeChecksumAt(ip[ihl:], tcpCsumOffset)
			}
		}
		return w.writeLibrary(pkts)
	}
	failed := 0
	w.others = w.others[:0]
	for i := 0; i < len(pkts); {
		pkt := pkts[i][Headroom:]
		if len(pkt) < ipv4HeaderLen || pkt[9] != protoTCP {
			w.others = append(w.others, pkts[i])
			i++
			continue
		}
		seg, ok := parseCoalescable(pkt)
		if !ok {
			b := pkts[i][Headroom-virtioNetHdrLen:]
			putSingleVirtioHeader(b, partial[i])
			bad, err := w.writeFile(b)
			if err != nil {
				return failed, err
			}
			failed += bad
			i++
			continue
		}
		segs, total, mss, lastFlags := coalesceRun(pkts[i:], seg)
		buf := pkts[i][:Headroom+total]
		vhdr := buf[Headroom-virtioNetHdrLen : Headroom]
		if segs == 1 {
			putSingleVirtioHeader(buf[Headroom-virtioNetHdrLen:], partial[i])
		} else {
			finishSuperpacket(vhdr, buf[Headroom:], seg.hdrLen, mss, lastFlags)
		}
		bad, err := w.writeFile(buf[Headroom-virtioNetHdrLen:])
		if err != nil {
			return failed, err
		}
		failed += bad
		i += segs
	}
	bad, err := w.writeLibrary(w.others)
	return failed + bad, err
}

// writeFile writes one packet, virtio-net header included, to the device file.
func (w *writer) writeFile(b []byte) (int, error) {
	if _, err := w.file.Write(b); err != nil {
		if errors.Is(err, os.ErrClosed) || errors.Is(err, syscall.EBADFD) {
			return 0, fmt.Errorf("write TUN: %w", os.ErrClosed)
		}
		return 1, nil
	}
	return 0, nil
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
