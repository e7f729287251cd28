package udp

import (
	"fmt"
	"net/netip"

	"github.com/weftnet/weft/overlay"
	"github.com/weftnet/weft/overlay/udpbatch"
	"github.com/weftnet/weft/subnet"
)

// CheckPortsFree refuses to go on when a socket holds one of the ports the
// data path will bind (Port .. Port+7, on the underlay's family): another
// weftd, most likely, whose lease, guard and direct routes Start would
// otherwise have touched before the bind failed.
func (b *Backend) CheckPortsFree() error {
	any := netip.IPv4Unspecified()
	if b.underlay6 {
		any = netip.IPv6Unspecified()
	}
	port := b.node.Config.Backend.Port
	if port == 0 {
		port = subnet.DefaultBackendPort
	}
	for k := range overlay.DefaultSourcePorts {
		if err := udpbatch.PortFree(netip.AddrPortFrom(any, uint16(port+k))); err != nil {
			return fmt.Errorf("udp: port %d (Port+%d of the %d the data path holds): %w", port+k, k, overlay.DefaultSourcePorts, err)
		}
	}
	return nil
}
