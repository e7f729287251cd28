package overlay

import (
	"encoding/binary"

	"github.com/weftnet/weft/overlay/tundev"
)

const (
	ipv4HeaderLen = 20
	ipv4TTLOffset = 8
	ipv4CsumOff   = 10
	ipv4SrcOffset = 12
	ipv4DstOffset = 16
	protoICMP     = 1
	protoTCP      = 6
	protoUDP      = 17
	protoSCTP     = 132
	// tcpMinHeaderLen is the length of a TCP header without options.
	tcpMinHeaderLen = 20
)

// ipv4Src and ipv4Dst read the addresses of an IPv4 header as big-endian integers.
func ipv4Src(p []byte) uint32 { return binary.BigEndian.Uint32(p[ipv4SrcOffset:]) }
func ipv4Dst(p []byte) uint32 { return binary.BigEndian.Uint32(p[ipv4DstOffset:]) }

// checkInnerIPv4 validates the IPv4 header of an inner packet p (all of it).
func checkInnerIPv4(p []byte) DropReason {
	if len(p) < 1 || p[0]>>4 != 4 {
		return DropNotIPv4
	}
	if len(p) < ipv4HeaderLen {
		return DropTruncated
	}
	ihl := int(p[0]&0x0f) * 4
	if ihl < ipv4HeaderLen || ihl > len(p) {
		return DropBadHeaderLength
	}
	if int(binary.BigEndian.Uint16(p[2:])) != len(p) {
		return DropLengthMismatch
	}
	return notDropped
}

// decrementTTL lowers the TTL of the IPv4 header in p by one and patches the
// header checksum (setHeaderWord). It returns false, leaving p alone, when
// the TTL would reach 0.
func decrementTTL(p []byte) bool {
	ttl := p[ipv4TTLOffset]
	if ttl <= 1 {
		return false
	}
	setHeaderWord(p, ipv4TTLOffset, uint16(ttl-1)<<8|uint16(p[ipv4TTLOffset+1])) // TTL<<8 | protocol
	return true
}

// setHeaderWord sets the 16-bit word at off of the IPv4 header in p and
// patches the header checksum incrementally (RFC 1624: HC' = ~(~HC + ~m + m')).
func setHeaderWord(p []byte, off int, word uint16) {
	old := uint32(binary.BigEndian.Uint16(p[off:]))
	binary.BigEndian.PutUint16(p[off:], word)
	sum := uint32(^binary.BigEndian.Uint16(p[ipv4CsumOff:])) + (^old & 0xffff) + uint32(word)
	sum = (sum & 0xffff) + (sum >> 16)
	sum = (sum & 0xffff) + (sum >> 16)
	binary.BigEndian.PutUint16(p[ipv4CsumOff:], ^uint16(sum))
}

// checksum is the Internet checksum (RFC 1071) of b.
func checksum(b []byte) uint16 { return tundev.Checksum(b) }
