// Package all builds the registry of every backend weft has, for weftd
// and weftctl (a new backend adds one line here).
package all

import (
	"github.com/weftnet/weft/backend"
	"github.com/weftnet/weft/backend/hostgw"
	"github.com/weftnet/weft/backend/udp"
	"github.com/weftnet/weft/backend/vxlan"
	"github.com/weftnet/weft/backend/wireguard"
)

// Registry returns a new registry of weft's backends by Backend.Type.
func Registry() backend.Registry {
	return backend.Registry{
		udp.Type:       udp.Factory(),
		hostgw.Type:    hostgw.Factory(),
		vxlan.Type:     vxlan.Factory(),
		wireguard.Type: wireguard.Factory(),
	}
}
