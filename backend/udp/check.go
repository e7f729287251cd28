package udp

import (
	"github.com/weftnet/weft/backend"
	"github.com/weftnet/weft/overlay"
	"github.com/weftnet/weft/subnet"
)

// Type is the Backend.Type of this backend.
const Type = subnet.BackendUDP

// Check validates a udp Backend section: Port, DirectRouting and MTU
// (checked by subnet.ParseConfig; an MTU must leave containers at least
// 576 after weft's encapsulation) and nothing else.
func Check(cfg *subnet.Config) error {
	if err := backend.CheckMTU(cfg.Backend, overlay.OverlayMTU); err != nil {
		return err
	}
	return cfg.Backend.DecodeRaw(&struct{}{})
}
