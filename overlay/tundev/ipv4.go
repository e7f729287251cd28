// Package tundev owns weft's TUN device: creating and configuring it, the
// virtio-net header in front of every packet (encode and decode), splitting
// the TSO superpackets the kernel hands over into segments (tsosplit.go),
// coalescing received TCP segments into GRO superpackets for the kernel
// (grocoalesce.go), and the checksums this needs (checksum.go).
//
// Every packet buffer has Headroom bytes in front of the packet: the device
// uses the last virtioNetHdrLen of them for the virtio-net header; the
// caller may use the rest (and the same bytes, when the device is done with
// them) for its own headers.
package tundev

const (
	// Headroom is where a packet starts in every buffer passed to Read and Write.
	Headroom = 16
	// BufSize is the size of every packet buffer: the largest IPv4 packet (a
	// TSO or GRO superpacket; an IPv6 one's payload is kept to the same
	// 64 KiB) plus the headroom.
	BufSize = Headroom + 65536
)

const (
	ipv4HeaderLen   = 20
	ipv4TTLOffset   = 8
	ipv4CsumOff     = 10
	ipv4SrcOffset   = 12
	protoTCP        = 6
	protoUDP        = 17
	udpHeaderLen    = 8
	udpCsumOffset   = 6
	tcpMinHeaderLen = 20
	tcpSeqOffset    = 4  // within the TCP header
	tcpFlagsOffset  = 13 // within the TCP header
	tcpCsumOffset   = 16 // within the TCP header
	tcpFlagFIN      = 0x01
	tcpFlagPSH      = 0x08
	tcpFlagACK      = 0x10
	ipv4FlagsDFOnly = 0x4000 // flags+fragment offset: DF set, MF clear, offset 0
	maxIPv4Packet   = 1<<16 - 1

	ipv6HeaderLen     = 40
	ipv6PayloadLenOff = 4
	ipv6NextHdrOff    = 6
	ipv6HopLimitOff   = 7
	ipv6SrcOffset     = 8
)

// l4Offset returns where the transport header of the IP packet pkt starts
// and its protocol: after the IPv4 header (IHL), or after the fixed IPv6
// header (extension headers are not followed: their next header is not a
// transport protocol here). ok is false when pkt is too short for its header.
func l4Offset(pkt []byte) (off int, proto byte, ok bool) {
	if len(pkt) >= ipv6HeaderLen && pkt[0]>>4 == 6 {
		return ipv6HeaderLen, pkt[ipv6NextHdrOff], true
	}
	if len(pkt) >= ipv4HeaderLen && pkt[0]>>4 == 4 {
		ihl := int(pkt[0]&0x0f) * 4
		return ihl, pkt[9], ihl >= ipv4HeaderLen && ihl <= len(pkt)
	}
	return 0, 0, false
}
