package wireguard

import (
	"errors"

	"github.com/weftnet/weft/subnet"
)

// parseSection reads this backend's fields out of the network config's
// Backend section (the shared Port and DirectRouting, the rest in Raw).
func parseSection(cfg *subnet.Config) (Config, error) {
	if cfg == nil {
		return Config{}, errors.New("network config is nil")
	}
	return ParseConfig(cfg.Backend.Raw, cfg.Backend.Port, cfg.Backend.DirectRouting)
}
