package tundev

import (
	"encoding/binary"
	"math/bits"
)

// Checksum is the Internet checksum (RFC 1071) of b. It sums 64-bit
// big-endian words with end-around carry (the one's complement sum is the
// same at any word size that is a multiple of 16 bits) and folds to 16 bits.
func Checksum(b []byte) uint16 {
	return ^fold(sum64(b))
}

// sum64 is the one's complement sum of b in 64-bit big-endian words (a
// trailing odd byte is padded with zero), not yet folded.
func sum64(b []byte) uint64 {
	var s, carries uint64
	var c uint64
	for len(b) >= 32 {
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b), 0)
		carries += c
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b[8:]), 0)
		carries += c
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b[16:]), 0)
		carries += c
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b[24:]), 0)
		carries += c
		b = b[32:]
	}
	for len(b) >= 8 {
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b), 0)
		carries += c
		b = b[8:]
	}
	var tail uint64
	if len(b) >= 4 {
		tail = uint64(binary.BigEndian.Uint32(b)) << 32
		b = b[4:]
	}
	if len(b) >= 2 {
		tail |= uint64(binary.BigEndian.Uint16(b)) << 16
		b = b[2:]
	}
	if len(b) == 1 {
		tail |= uint64(b[0]) << 8
	}
	s, c = bits.Add64(s, tail, 0)
	carries += c
	s, c = bits.Add64(s, carries, 0)
	return s + c
}

// fold reduces a 64-bit one's complement sum to 16 bits.
func fold(s uint64) uint16 {
	s = (s >> 32) + (s & 0xffffffff)
	s = (s >> 32) + (s & 0xffffffff)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	return uint16(s)
}

// PseudoHeaderSum is the folded (not complemented) one's complement sum of
// the IPv4 pseudo-header of a proto segment of l4Len bytes (header + payload)
// in the IPv4 packet ip. A TCP checksum field holding it is "partial": the
// kernel (or CompleteTCPChecksum) completes it.
func PseudoHeaderSum(ip []byte, proto byte, l4Len int) uint16 {
	sum := uint32(binary.BigEndian.Uint16(ip[12:])) + uint32(binary.BigEndian.Uint16(ip[14:])) +
		uint32(binary.BigEndian.Uint16(ip[16:])) + uint32(binary.BigEndian.Uint16(ip[18:])) +
		uint32(proto) + uint32(l4Len)
	for sum>>16 != 0 {
		sum = (sum & 0xffff) + (sum >> 16)
	}
	return uint16(sum)
}

// PseudoHeaderSumIPv6 is PseudoHeaderSum for the IPv6 packet ip (RFC 8200
// 8.1: source and destination addresses, the upper-layer length, the next
// header proto).
func PseudoHeaderSumIPv6(ip []byte, proto byte, l4Len int) uint16 {
	var sum uint32
	for i := 8; i < 40; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	sum += uint32(l4Len>>16) + uint32(l4Len&0xffff) + uint32(proto)
	for sum>>16 != 0 {
		sum = (sum & 0xffff) + (sum >> 16)
	}
	return uint16(sum)
}

// pseudoHeaderSumFor is the pseudo-header sum of an IPv4 or IPv6 packet.
func pseudoHeaderSumFor(ip []byte, proto byte, l4Len int) uint16 {
	if ip[0]>>4 == 6 {
		return PseudoHeaderSumIPv6(ip, proto, l4Len)
	}
	return PseudoHeaderSum(ip, proto, l4Len)
}

// completeChecksum finishes a transport checksum whose field at off holds the
// pseudo-header sum: the checksum over l4 as it stands (0 sent as 0xffff).
func completeChecksum(l4 []byte, off int) {
	c := Checksum(l4)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(l4[off:], c)
}

// completeChecksumAt finishes a checksum whose field at off holds the
// pseudo-header sum (any protocol: 0 stays as computed except for UDP).
func completeChecksumAt(l4 []byte, off int) {
	if off == udpCsumOffset {
		completeChecksum(l4, off)
		return
	}
	c := Checksum(l4)
	l4[off], l4[off+1] = byte(c>>8), byte(c)
}
