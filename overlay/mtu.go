package overlay

const (
	outerIPv4HeaderLen = 20
	udpHeaderLen       = 8
)

// OverlayMTU is the MTU of the TUN device for a given IPv4 underlay MTU:
// every inner packet is carried behind an outer IPv4 header, a UDP header
// and the weft header.
func OverlayMTU(underlayMTU int) int { return OverlayMTUFor(underlayMTU, false) }

// OverlayMTUFor is OverlayMTU for an IPv4 or (ipv6Underlay) IPv6 underlay,
// whose outer header is 20 bytes longer.
func OverlayMTUFor(underlayMTU int, ipv6Underlay bool) int {
	if ipv6Underlay {
		return underlayMTU - outerIPv6HeaderLen - udpHeaderLen - HeaderLen
	}
	return underlayMTU - outerIPv4HeaderLen - udpHeaderLen - HeaderLen
}
