// Package hostgw is the "host-gw" backend (flannel's): every peer is
// reached through a plain kernel route via its PublicIP, so all nodes must
// share one L2 network; a peer that is not on it is unreachable.
package hostgw

import (
	"errors"

	"github.com/weftnet/weft/backend"

	"github.com/weftnet/weft/subnet"
)

// Type is the Backend.Type of this backend.
const Type = subnet.BackendHostGW

// Check validates a host-gw Backend section: no DirectRouting (every peer
// is routed directly already) and no fields of other backends.
func Check(cfg *subnet.Config) error {
	if cfg.Backend.DirectRouting {
		return errors.New("Backend.DirectRouting applies to Type \"udp\" only: \"host-gw\" routes every peer directly")
	}
	return cfg.Backend.DecodeRaw(&struct{}{})
}

// Factory is host-gw's entry in a backend.Registry.
func Factory() backend.Factory { return backend.Factory{Check: Check} }
