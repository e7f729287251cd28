package wireguard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/weftnet/weft/backend/wireguard/keyfile"
)

// Type is the Backend.Type of this backend; Mode is how /status names its
// peers.
const (
	Type = "wireguard"
	Mode = "wireguard"
)

// Defaults, as in flannel.
const (
	DefaultListenPort = 51820
	DefaultMode       = ModeSeparate
)

// flannel's Modes: which underlay family reaches a dual-stack peer. weft
// runs one device for both families (flannel's separate mode runs one per
// family); see underlay.endpoint.
const (
	ModeSeparate = "separate"
	ModeAuto     = "auto"
	ModeIPv4     = "ipv4"
	ModeIPv6     = "ipv6"
)

// Config is the wireguard backend's part of the Backend section (flannel's
// keys).
type Config struct {
	// ListenPort is the UDP port of the WireGuard device.
	ListenPort int
	// ListenPortV6 is flannel's port of its IPv6 device (Mode separate);
	// weft has none and accepts the key only so that a flannel config
	// parses unchanged (Backend.separateDualStack says what that means
	// for flannel nodes).
	ListenPortV6 int
	// PSK is an optional pre-shared key (base64 of 32 bytes, `wg genpsk`)
	// mixed into every handshake.
	PSK keyfile.Key
	// PersistentKeepaliveInterval, in seconds (0: off), as flannel reads it.
	PersistentKeepaliveInterval int
	// Mode is flannel's Mode.
	Mode string
}

// configJSON is the section as written (flannel's names).
type configJSON struct {
	ListenPort                  *int
	ListenPortV6                *int
	PSK                         *string
	PersistentKeepaliveInterval *int
	Mode                        *string
}

// ParseConfig reads the backend-specific fields of the Backend section (a
// JSON object, "" for none) and fills in flannel's defaults. port is the
// section's shared "Port" field (0 when absent): the wireguard backend's
// port is ListenPort, so a Port is refused rather than ignored.
func ParseConfig(raw string, port int, directRouting bool) (Config, error) {
	if port != 0 {
		return Config{}, errors.New("Backend.Port: the wireguard backend's port is ListenPort (flannel's key)")
	}
	if directRouting {
		return Config{}, errors.New("Backend.DirectRouting does not apply to Type \"wireguard\": every peer's traffic is encrypted")
	}
	var in configJSON
	if strings.TrimSpace(raw) != "" {
		dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			const prefix = "json: unknown field "
			if msg := err.Error(); strings.HasPrefix(msg, prefix) {
				return Config{}, fmt.Errorf("Backend: unknown field %s", strings.TrimPrefix(msg, prefix))
			}
			return Config{}, fmt.Errorf("Backend (wireguard): %w", err)
		}
	}
	c := Config{ListenPort: DefaultListenPort, Mode: DefaultMode}
	if in.ListenPort != nil {
		if *in.ListenPort < 1 || *in.ListenPort > 65535 {
			return Config{}, fmt.Errorf("Backend.ListenPort %d out of range [1, 65535]", *in.ListenPort)
		}
		c.ListenPort = *in.ListenPort
	}
	if in.ListenPortV6 != nil {
		if *in.ListenPortV6 < 1 || *in.ListenPortV6 > 65535 {
			return Config{}, fmt.Errorf("Backend.ListenPortV6 %d out of range [1, 65535]", *in.ListenPortV6)
		}
		c.ListenPortV6 = *in.ListenPortV6
	}
	if in.PSK != nil && *in.PSK != "" {
		k, err := keyfile.Parse(*in.PSK)
		if err != nil {
			return Config{}, fmt.Errorf("Backend.PSK (base64 of 32 bytes, e.g. from `wg genpsk`): %w", err)
		}
		c.PSK = k
	}
	if in.PersistentKeepaliveInterval != nil {
		v := *in.PersistentKeepaliveInterval
		if v < 0 || v > 65535 {
			return Config{}, fmt.Errorf("Backend.PersistentKeepaliveInterval %d out of range [0, 65535] seconds", v)
		}
		c.PersistentKeepaliveInterval = v
	}
	if in.Mode != nil {
		switch *in.Mode {
		case ModeSeparate, ModeAuto, ModeIPv4, ModeIPv6:
			c.Mode = *in.Mode
		default:
			return Config{}, fmt.Errorf("Backend.Mode %q: want \"separate\", \"auto\", \"ipv4\" or \"ipv6\"", *in.Mode)
		}
	}
	return c, nil
}
