package tundev

import "encoding/binary"

// splitGSO splits the IPv4 or IPv6 GSO packet pkt (virtio header h) into segments at
// bufs[i][Headroom:], their lengths in sizes[i]. TCP segments keep the
// pseudo-header sum in their checksum field (partial[i] = true: the receiver
// lets its kernel complete it); UDP segments get a full checksum. pkt may be
// bufs[0][Headroom:] itself. It returns the number of segments, or ok=false
// when pkt is malformed or needs more than len(bufs) buffers (need says how
// many; 0 when malformed).
//
// With tails (not nil) and a TCP pkt that is bufs[0][Headroom:] itself, the
// payloads are not copied: segment 0 stays in place, and segment i > 0 is
// its headers at bufs[i][Headroom:] followed by tails[i], a view into pkt
// (sizes[i] counts both). Otherwise tails[i] is set to nil.
func splitGSO(pkt []byte, h virtioHeader, bufs [][]byte, sizes []int, partial []bool, tails [][]byte) (n, need int, ok bool) {
	ihl := int(h.csumStart)
	if h.gsoSize == 0 || len(pkt) < ipv4HeaderLen {
		return 0, 0, false
	}
	v6 := pkt[0]>>4 == 6
	var proto byte
	switch {
	case v6:
		// TCP or UDP right after the fixed header (the kernel's GSO packets
		// from a local socket carry no extension headers).
		if len(pkt) < ipv6HeaderLen || ihl != ipv6HeaderLen {
			return 0, 0, false
		}
		proto = pkt[ipv6NextHdrOff]
	case pkt[0]>>4 == 4 && int(pkt[0]&0x0f)*4 == ihl:
		proto = pkt[9]
	default:
		return 0, 0, false
	}
	var hdrLen int
	switch {
	case (h.gsoType == virtioNetHdrGSOTCPv4 && !v6 || h.gsoType == virtioNetHdrGSOTCPv6 && v6) &&
		proto == protoTCP && h.csumOffset == tcpCsumOffset && len(pkt) >= ihl+tcpMinHeaderLen:
		hdrLen = ihl + int(pkt[ihl+12]>>4)*4
		if hdrLen < ihl+tcpMinHeaderLen {
			return 0, 0, false
		}
	case h.gsoType == virtioNetHdrGSOUDPL4 && proto == protoUDP && h.csumOffset == udpCsumOffset:
		hdrLen = ihl + udpHeaderLen
	default:
		return 0, 0, false
	}
	if hdrLen >= len(pkt) || hdrLen < ihl+udpHeaderLen {
		return 0, 0, false
	}
	mss := int(h.gsoSize)
	data := len(pkt) - hdrLen
	n = (data + mss - 1) / mss
	if n > len(bufs) {
		return 0, n, false
	}
	tcp := proto == protoTCP
	var id0 uint16
	if !v6 {
		id0 = binary.BigEndian.Uint16(pkt[4:])
	}
	var seq0 uint32
	if tcp {
		seq0 = binary.BigEndian.Uint32(pkt[ihl+tcpSeqOffset:])
	}
	views := tails != nil && tcp && &pkt[0] == &bufs[0][Headroom]
	// Last segment first: segment 0 may be pkt itself, whose headers the
	// others copy.
	for i := n - 1; i >= 0; i-- {
		start := hdrLen + i*mss
		end := min(start+mss, len(pkt))
		segLen := hdrLen + end - start
		var seg []byte // the whole segment, or (views, i > 0) its headers
		switch {
		case views && i == 0:
			seg = pkt[:segLen]
			tails[0] = nil
		case views:
			seg = bufs[i][Headroom : Headroom+hdrLen]
			copy(seg, pkt[:hdrLen])
			tails[i] = pkt[start:end]
		default:
			seg = bufs[i][Headroom : Headroom+segLen]
			copy(seg[hdrLen:], pkt[start:end])
			copy(seg, pkt[:hdrLen])
			if tails != nil {
				tails[i] = nil
			}
		}
		if v6 {
			binary.BigEndian.PutUint16(seg[ipv6PayloadLenOff:], uint16(segLen-ipv6HeaderLen))
		} else {
			binary.BigEndian.PutUint16(seg[2:], uint16(segLen))
			binary.BigEndian.PutUint16(seg[4:], id0+uint16(i))
			seg[ipv4CsumOff], seg[ipv4CsumOff+1] = 0, 0
			binary.BigEndian.PutUint16(seg[ipv4CsumOff:], Checksum(seg[:ihl]))
		}
		l4 := seg[ihl:]
		if tcp {
			binary.BigEndian.PutUint32(l4[tcpSeqOffset:], seq0+uint32(i*mss))
			if i != n-1 {
				l4[tcpFlagsOffset] &^= tcpFlagFIN | tcpFlagPSH
			}
			binary.BigEndian.PutUint16(l4[tcpCsumOffset:], pseudoHeaderSumFor(seg, protoTCP, segLen-ihl))
			partial[i] = true
		} else {
			// A UDP segment's view of l4 is whole (tails only for TCP).
			binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
			binary.BigEndian.PutUint16(l4[udpCsumOffset:], pseudoHeaderSumFor(seg, protoUDP, len(l4)))
			completeChecksum(l4, udpCsumOffset)
			partial[i] = false
		}
		sizes[i] = segLen
	}
	return n, n, true
}
