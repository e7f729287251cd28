package tundev

import "encoding/binary"

// The virtio-net header the TUN expects in front of every packet when it was
// opened with IFF_VNET_HDR (struct virtio_net_hdr, 10 bytes). Without
// TUNSETVNETLE the kernel reads its fields in native byte order, as the tun
// library writes them.
const (
	virtioNetHdrLen        = 10
	virtioNetHdrFNeedsCsum = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM
	virtioNetHdrGSONone    = 0 // VIRTIO_NET_HDR_GSO_NONE
	virtioNetHdrGSOTCPv4   = 1 // VIRTIO_NET_HDR_GSO_TCPV4
	virtioNetHdrGSOTCPv6   = 4 // VIRTIO_NET_HDR_GSO_TCPV6
	virtioNetHdrGSOUDPL4   = 5 // VIRTIO_NET_HDR_GSO_UDP_L4
)

type virtioHeader struct {
	flags      uint8
	gsoType    uint8
	hdrLen     uint16
	gsoSize    uint16
	csumStart  uint16
	csumOffset uint16
}

// putVirtioHeader encodes h into b[:virtioNetHdrLen].
func putVirtioHeader(b []byte, h virtioHeader) {
	_ = b[virtioNetHdrLen-1]
	b[0] = h.flags
	b[1] = h.gsoType
	binary.NativeEndian.PutUint16(b[2:], h.hdrLen)
	binary.NativeEndian.PutUint16(b[4:], h.gsoSize)
	binary.NativeEndian.PutUint16(b[6:], h.csumStart)
	binary.NativeEndian.PutUint16(b[8:], h.csumOffset)
}

// readVirtioHeader decodes the virtio-net header at the start of b.
func readVirtioHeader(b []byte) virtioHeader {
	return virtioHeader{
		flags:      b[0],
		gsoType:    b[1],
		hdrLen:     binary.NativeEndian.Uint16(b[2:]),
		gsoSize:    binary.NativeEndian.Uint16(b[4:]),
		csumStart:  binary.NativeEndian.Uint16(b[6:]),
		csumOffset: binary.NativeEndian.Uint16(b[8:]),
	}
}
