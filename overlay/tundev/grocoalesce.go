package tundev

import (
	"bytes"
	"encoding/binary"
)

// Coalescing consecutive TCP segments of one flow into one superpacket that the
// TUN accepts with a virtio-net GSO header (see tunwriter.go). The kernel treats
// such a packet like a locally built GSO packet: it neither verifies nor
// recomputes the TCP checksum of every segment, which the tun library's own
// GRO (on Write) does in user space.

// tcpSeg is what coalescing needs to know about one TCP/IPv4 or TCP/IPv6 segment.
type tcpSeg struct {
	ipLen   int // IP header: 20 (IPv4, no options) or 40 (IPv6, no extension headers)
	hdrLen  int // IP header + TCP header
	payload int
	seq     uint32
	flags   byte
}

// parseCoalescable reports whether pkt is a TCP/IPv4 segment that may take
// part in a superpacket: no IP options, DF set and not a fragment, only the
// ACK (and possibly PSH) flags, and a non-empty payload.
//
// A TCP/IPv6 segment may when TCP follows the fixed header directly (no
// extension headers).
//
// Either way its IP header must claim exactly len(pkt) bytes: the packets
// are a peer's (untrusted), and a superpacket's length is rewritten from
// the buffers, so a segment claiming more (which the kernel would drop) or
// less (trailing bytes, which the kernel would trim) would otherwise lose
// its lie or lend its trailing bytes to the stream as TCP data.
func parseCoalescable(pkt []byte) (tcpSeg, bool) {
	ipLen := ipv4HeaderLen
	if len(pkt) >= ipv6HeaderLen+tcpMinHeaderLen && pkt[0]>>4 == 6 && pkt[ipv6NextHdrOff] == protoTCP {
		ipLen = ipv6HeaderLen
	} else if len(pkt) < ipv4HeaderLen+tcpMinHeaderLen || pkt[0] != 0x45 || pkt[9] != protoTCP ||
		binary.BigEndian.Uint16(pkt[6:]) != ipv4FlagsDFOnly {
		return tcpSeg{}, false
	}
	if ipLen == ipv6HeaderLen {
		if int(binary.BigEndian.Uint16(pkt[ipv6PayloadLenOff:]))+ipv6HeaderLen != len(pkt) {
			return tcpSeg{}, false
		}
	} else if int(binary.BigEndian.Uint16(pkt[2:])) != len(pkt) {
		return tcpSeg{}, false
	}
	tcp := pkt[ipLen:]
	doff := int(tcp[12]>>4) * 4
	flags := tcp[tcpFlagsOffset]
	hdrLen := ipLen + doff
	if doff < tcpMinHeaderLen || hdrLen >= len(pkt) || flags&^(tcpFlagACK|tcpFlagPSH) != 0 || flags&tcpFlagACK == 0 {
		return tcpSeg{}, false
	}
	return tcpSeg{
		ipLen:   ipLen,
		hdrLen:  hdrLen,
		payload: len(pkt) - hdrLen,
		seq:     binary.BigEndian.Uint32(tcp[tcpSeqOffset:]),
		flags:   flags,
	}, true
}

// sameSegmentHeaders reports whether b may follow a in one superpacket as far
// as their headers go (both already passed parseCoalescable with equal
// ipLen and hdrLen): same TOS, TTL (IPv6: version, traffic class and flow
// label, hop limit), addresses, ports, ack number, window, urgent pointer
// and TCP options, since the superpacket carries a's headers only.
func sameSegmentHeaders(a, b []byte, ipLen, hdrLen int) bool {
	if ipLen == ipv6HeaderLen {
		if !bytes.Equal(a[:4], b[:4]) || a[ipv6HopLimitOff] != b[ipv6HopLimitOff] ||
			!bytes.Equal(a[ipv6SrcOffset:ipLen+4], b[ipv6SrcOffset:ipLen+4]) { // addresses, ports
			return false
		}
	} else if a[1] != b[1] || a[ipv4TTLOffset] != b[ipv4TTLOffset] ||
		!bytes.Equal(a[ipv4SrcOffset:ipLen+4], b[ipv4SrcOffset:ipLen+4]) { // addresses, ports
		return false
	}
	return bytes.Equal(a[ipLen+8:ipLen+12], b[ipLen+8:ipLen+12]) && // ack
		bytes.Equal(a[ipLen+14:ipLen+16], b[ipLen+14:ipLen+16]) && // window
		bytes.Equal(a[ipLen+18:hdrLen], b[ipLen+18:hdrLen]) // urgent pointer, options
}

// coalesceRun finds how many of pkts (bare inner packets) form one
// superpacket starting with pkts[0] (parsed as first): same flow and
// headers, contiguous sequence numbers, the first segment's payload size
// (only the last may be shorter), PSH only on the last, at most
// maxIPv4Packet bytes in all. It copies nothing: the superpacket is
// pkts[0] followed by the payloads pkts[k][first.hdrLen:] of the others. It
// returns how many segments it took (at least 1), the superpacket's length
// and the MSS. The headers of the first segment are left as they were;
// finishSuperpacket fixes them.
func coalesceRun(pkts [][]byte, first tcpSeg) (segs, total, mss int, lastFlags byte) {
	head := pkts[0]
	mss = first.payload
	total = len(head)
	next := first.seq + uint32(mss)
	segs, lastFlags = 1, first.flags
	if first.flags&tcpFlagPSH != 0 {
		return segs, total, mss, lastFlags
	}
	for _, q := range pkts[1:] {
		s, ok := parseCoalescable(q)
		if !ok || s.ipLen != first.ipLen || s.hdrLen != first.hdrLen || s.seq != next || s.payload > mss || total+s.payload > maxIPv4Packet ||
			!sameSegmentHeaders(head, q, first.ipLen, first.hdrLen) {
			break
		}
		total += s.payload
		next += uint32(s.payload)
		segs++
		lastFlags = s.flags
		if s.payload < mss || s.flags&tcpFlagPSH != 0 {
			break
		}
	}
	return segs, total, mss, lastFlags
}

// finishSuperpacket fixes the headers of the first segment pkt of a
// coalesced run of total bytes so that they head a GSO superpacket: PSH as
// on the last segment, IPv4 total length and header checksum, and the TCP
// checksum field set to the pseudo-header sum (not complemented) so the
// kernel completes it (CHECKSUM_PARTIAL). It writes the matching virtio-net
// header into vhdr. seg is the first segment as parseCoalescable saw it.
func finishSuperpacket(vhdr, pkt []byte, total int, seg tcpSeg, mss int, lastFlags byte) {
	ipLen := seg.ipLen
	pkt[ipLen+tcpFlagsOffset] |= lastFlags & tcpFlagPSH
	gso := byte(virtioNetHdrGSOTCPv4)
	if ipLen == ipv6HeaderLen {
		gso = virtioNetHdrGSOTCPv6
		binary.BigEndian.PutUint16(pkt[ipv6PayloadLenOff:], uint16(total-ipv6HeaderLen))
		binary.BigEndian.PutUint16(pkt[ipLen+tcpCsumOffset:], PseudoHeaderSumIPv6(pkt, protoTCP, total-ipLen))
	} else {
		binary.BigEndian.PutUint16(pkt[2:], uint16(total))
		pkt[ipv4CsumOff], pkt[ipv4CsumOff+1] = 0, 0
		binary.BigEndian.PutUint16(pkt[ipv4CsumOff:], Checksum(pkt[:ipv4HeaderLen]))
		binary.BigEndian.PutUint16(pkt[ipLen+tcpCsumOffset:], PseudoHeaderSum(pkt, protoTCP, total-ipLen))
	}
	putVirtioHeader(vhdr, virtioHeader{
		flags:      virtioNetHdrFNeedsCsum,
		gsoType:    gso,
		hdrLen:     uint16(seg.hdrLen),
		gsoSize:    uint16(mss),
		csumStart:  uint16(ipLen),
		csumOffset: tcpCsumOffset,
	})
}
