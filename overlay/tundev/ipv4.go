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
	// TSO or GRO superpacket) plus the headroom.
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
)
