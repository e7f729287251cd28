package udp

import (
	"fmt"

	"github.com/weftnet/weft/backend"
	"github.com/weftnet/weft/overlay"
	"github.com/weftnet/weft/subnet"
)

// Type is the Backend.Type of this backend.
const Type = subnet.BackendUDP

// Check validates a udp Backend section: Port (checked by
// subnet.ParseConfig, and CheckSourcePorts), DirectRouting and MTU (an MTU
// must leave containers at least 576 after weft's encapsulation) and
// nothing else.
func Check(cfg *subnet.Config) error {
	if err := CheckSourcePorts(cfg.Backend); err != nil {
		return err
	}
	if err := backend.CheckMTU(cfg.Backend, overlay.OverlayMTU); err != nil {
		return err
	}
	return cfg.Backend.DecodeRaw(&struct{}{})
}

// CheckSourcePorts refuses a Backend.Port whose source ports (Port ..
// Port+overlay.DefaultSourcePorts-1, each held by every node's data path)
// pass 65535: overlay.New would refuse it on every node, after the lease
// was taken.
func CheckSourcePorts(b subnet.Backend) error {
	port := b.Port
	if port == 0 {
		port = subnet.DefaultBackendPort
	}
	if last := 65535 - (overlay.DefaultSourcePorts - 1); port > last {
		return fmt.Errorf("Backend.Port %d: the %s backend also sends from the %d ports above it; at most %d",
			port, b.Type, overlay.DefaultSourcePorts-1, last)
	}
	return nil
}
