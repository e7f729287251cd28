package udp

import "github.com/weftnet/weft/subnet"

// Type is the Backend.Type of this backend.
const Type = subnet.BackendUDP

// Check validates a udp Backend section: Port and DirectRouting (checked
// by subnet.ParseConfig) and nothing else.
func Check(cfg *subnet.Config) error {
	return cfg.Backend.DecodeRaw(&struct{}{})
}
