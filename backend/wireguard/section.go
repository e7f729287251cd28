package wireguard

import (
	"errors"

	"github.com/weftnet/weft/subnet"
)

// parseSection reads this backend's fields out of the network config's
// Backend section.
func parseSection(cfg *subnet.Config) (Config, error) {
	if cfg == nil {
		return Config{}, errors.New("network config is nil")
	}
	// Until the section's own fields reach backends (Backend.Raw), only
	// the defaults; subnet fills in Port 8285 for every type for now.
	return ParseConfig("", 0, cfg.Backend.DirectRouting)
}
