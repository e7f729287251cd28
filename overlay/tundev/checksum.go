package tundev

import "encoding/binary"

// Checksum is the Internet checksum (RFC 1071) of b.
func Checksum(b []byte) uint16 {
	var sum uint32
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = (sum & 0xffff) + (sum >> 16)
	}
	return ^uint16(sum)
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
