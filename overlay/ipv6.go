package overlay

import "encoding/binary"

const (
	ipv6HeaderLen      = 40
	ipv6PayloadLenOff  = 4
	ipv6NextHeaderOff  = 6
	ipv6HopLimitOff    = 7
	ipv6SrcOffset      = 8
	ipv6DstOffset      = 24
	protoHopByHop      = 0
	protoIPv6Routing   = 43
	protoIPv6Fragment  = 44
	protoICMPv6        = 58
	ipv6MinMTU         = 1280
	outerIPv6HeaderLen = 40
)

// ipv6Src and ipv6Dst read the addresses of an IPv6 header as two
// big-endian 64-bit halves.
func ipv6Src(p []byte) (hi, lo uint64) {
	return binary.BigEndian.Uint64(p[ipv6SrcOffset:]), binary.BigEndian.Uint64(p[ipv6SrcOffset+8:])
}

func ipv6Dst(p []byte) (hi, lo uint64) {
	return binary.BigEndian.Uint64(p[ipv6DstOffset:]), binary.BigEndian.Uint64(p[ipv6DstOffset+8:])
}

// checkInnerIPv6 validates the fixed header of an inner IPv6 packet p (all
// of it): long enough, and a payload length that matches what arrived (no
// jumbograms: weft carries at most 64 KiB).
func checkInnerIPv6(p []byte) DropReason {
	if len(p) < ipv6HeaderLen {
		return DropTruncated
	}
	if int(binary.BigEndian.Uint16(p[ipv6PayloadLenOff:]))+ipv6HeaderLen != len(p) {
		return DropLengthMismatch
	}
	return notDropped
}

// decrementHopLimit lowers the hop limit of the IPv6 header in p (IPv6 has
// no header checksum). It returns false, leaving p alone, when the hop limit
// would reach 0.
func decrementHopLimit(p []byte) bool {
	if p[ipv6HopLimitOff] <= 1 {
		return false
	}
	p[ipv6HopLimitOff]--
	return true
}

// isTCPv6WithHeader reports whether the (checked) inner IPv6 packet p
// carries TCP right after its fixed header, with room for a TCP header.
func isTCPv6WithHeader(p []byte) bool {
	return p[ipv6NextHeaderOff] == protoTCP && len(p) >= ipv6HeaderLen+tcpMinHeaderLen
}
