package overlay

const (
	outerIPv4HeaderLen = 20
	udpHeaderLen       = 8
)

// OverlayMTU is the MTU of the TUN device for a given underlay MTU: every inner
// packet is carried behind an outer IPv4 header, a UDP header and the weft header.
func OverlayMTU(underlayMTU int) int {
	return underlayMTU - outerIPv4HeaderLen - udpHeaderLen - HeaderLen
}
