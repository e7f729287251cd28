// Package hostgw is the "host-gw" backend (flannel's): every peer is
// reached through a plain kernel route via its PublicIP, so all nodes must
// share one L2 network; a peer that is not on it is unreachable. It is the
// udp backend's reconciler with every peer routed (routing.Policy.HostGW):
// weft0 stays, for the network's route, the routes' preferred source and
// ICMP errors for unreachable peers; containers get the underlay's MTU (or
// Backend.MTU: nothing is encapsulated, so it is theirs unchanged).
package hostgw

import (
	"errors"

	"github.com/weftnet/weft/backend"
	"github.com/weftnet/weft/backend/udp"
	"github.com/weftnet/weft/routing"

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
	if err := udp.CheckSourcePorts(cfg.Backend); err != nil {
		return err // weft0's socket stays: the ICMP errors for unreachable peers
	}
	if err := backend.CheckMTU(cfg.Backend, func(outgoing int) int { return outgoing }); err != nil {
		return err
	}
	return cfg.Backend.DecodeRaw(&struct{}{})
}

// Factory is host-gw's entry in a backend.Registry.
func Factory() backend.Factory {
	return backend.Factory{Check: Check, New: func(n backend.Node) (backend.Backend, error) {
		return udp.New(n, routing.Policy{HostGW: true})
	}}
}
