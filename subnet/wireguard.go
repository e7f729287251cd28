package subnet

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// BackendWireGuard encrypts and authenticates every packet between nodes
// with WireGuard (embedded from golang.zx2c4.com/wireguard), configured as
// flannel's "wireguard" backend.
const BackendWireGuard = "wireguard"

// Defaults of the wireguard backend, as in flannel.
const (
	DefaultWireGuardListenPort = 51820
	DefaultWireGuardMode       = WireGuardModeSeparate
)

// WireGuard modes (flannel's Mode). weft's networks are IPv4-only: one
// device carries everything, so separate, auto and ipv4 behave alike.
const (
	WireGuardModeSeparate = "separate"
	WireGuardModeAuto     = "auto"
	WireGuardModeIPv4     = "ipv4"
	WireGuardModeIPv6     = "ipv6"
)

// WireGuardConfig is the wireguard backend's part of the "Backend" object
// (flannel's keys). The zero value is what other backends carry.
type WireGuardConfig struct {
	// ListenPort is the UDP port of the WireGuard device (also in
	// Backend.Port for the parts of weft that only need the port).
	ListenPort int
	// ListenPortV6 is flannel's port of the IPv6 device; weft has none and
	// keeps the value only to write the config back as it was.
	ListenPortV6 int
	// PSK is an optional pre-shared key (base64 of 32 bytes) mixed into
	// every handshake, as flannel's PSK.
	PSK string
	// PersistentKeepaliveInterval in seconds (0: off), as flannel's.
	PersistentKeepaliveInterval int
	// Mode is flannel's Mode (separate, auto, ipv4; ipv6 is refused).
	Mode string
}

// wireGuardFields are the Backend keys of the wireguard backend.
var wireGuardFields = map[string]func(raw json.RawMessage, w *WireGuardConfig) error{
	"ListenPort":   decodeWGPort("ListenPort", func(w *WireGuardConfig) *int { return &w.ListenPort }),
	"ListenPortV6": decodeWGPort("ListenPortV6", func(w *WireGuardConfig) *int { return &w.ListenPortV6 }),
	"PSK": func(raw json.RawMessage, w *WireGuardConfig) error {
		if err := json.Unmarshal(raw, &w.PSK); err != nil {
			return fmt.Errorf("Backend.PSK: want a string (base64 of 32 bytes, e.g. from `wg genpsk`): %w", err)
		}
		if w.PSK == "" {
			return nil
		}
		if _, err := ParseWireGuardKey(w.PSK); err != nil {
			return fmt.Errorf("Backend.PSK: %w", err)
		}
		return nil
	},
	"PersistentKeepaliveInterval": func(raw json.RawMessage, w *WireGuardConfig) error {
		if err := json.Unmarshal(raw, &w.PersistentKeepaliveInterval); err != nil {
			return fmt.Errorf("Backend.PersistentKeepaliveInterval: want an integer number of seconds: %w", err)
		}
		if w.PersistentKeepaliveInterval < 0 || w.PersistentKeepaliveInterval > 65535 {
			return fmt.Errorf("Backend.PersistentKeepaliveInterval %d out of range [0, 65535] seconds", w.PersistentKeepaliveInterval)
		}
		return nil
	},
	"Mode": func(raw json.RawMessage, w *WireGuardConfig) error {
		if err := json.Unmarshal(raw, &w.Mode); err != nil {
			return fmt.Errorf("Backend.Mode: want a string: %w", err)
		}
		switch w.Mode {
		case WireGuardModeSeparate, WireGuardModeAuto, WireGuardModeIPv4:
			return nil
		case WireGuardModeIPv6:
			return errors.New("Backend.Mode \"ipv6\": weft's networks are IPv4-only (use \"separate\", \"auto\" or \"ipv4\")")
		}
		return fmt.Errorf("Backend.Mode %q: want \"separate\", \"auto\" or \"ipv4\"", w.Mode)
	},
}

func decodeWGPort(name string, field func(*WireGuardConfig) *int) func(json.RawMessage, *WireGuardConfig) error {
	return func(raw json.RawMessage, w *WireGuardConfig) error {
		p := field(w)
		if err := json.Unmarshal(raw, p); err != nil {
			return fmt.Errorf("Backend.%s: want an integer: %w", name, err)
		}
		if *p < 1 || *p > 65535 {
			return fmt.Errorf("Backend.%s %d out of range [1, 65535]", name, *p)
		}
		return nil
	}
}

// decodeWireGuardField decodes name if it is one of the wireguard keys
// (case-insensitively, as encoding/json); known is false otherwise.
func decodeWireGuardField(name string, raw json.RawMessage, w *WireGuardConfig) (known bool, err error) {
	for k, dec := range wireGuardFields {
		if strings.EqualFold(k, name) {
			return true, dec(raw, w)
		}
	}
	return false, nil
}

// checkWireGuard fills in the wireguard defaults, or refuses wireguard
// keys given to another backend. Runs after the Backend object is decoded.
func (b *Backend) checkWireGuard(portSet bool) error {
	if b.Type != BackendWireGuard {
		if b.WireGuard != (WireGuardConfig{}) {
			return fmt.Errorf("Backend: ListenPort, ListenPortV6, PSK, PersistentKeepaliveInterval and Mode apply to Type %q only", BackendWireGuard)
		}
		return nil
	}
	if portSet {
		return errors.New("Backend.Port: the wireguard backend's port is ListenPort (flannel's key)")
	}
	if b.DirectRouting {
		return errors.New("Backend.DirectRouting applies to Type \"udp\" only: \"wireguard\" encrypts the traffic to every peer")
	}
	if b.WireGuard.ListenPort == 0 {
		b.WireGuard.ListenPort = DefaultWireGuardListenPort
	}
	if b.WireGuard.Mode == "" {
		b.WireGuard.Mode = DefaultWireGuardMode
	}
	b.Port = b.WireGuard.ListenPort
	return nil
}

// WireGuardKeyLen is the length of a WireGuard key (Curve25519 point or
// scalar, or a pre-shared key).
const WireGuardKeyLen = 32

// ParseWireGuardKey decodes a key in WireGuard's text form: standard
// base64 of exactly 32 bytes (what `wg genkey`, `wg pubkey` and `wg genpsk`
// print).
func ParseWireGuardKey(s string) ([WireGuardKeyLen]byte, error) {
	var k [WireGuardKeyLen]byte
	if len(s) != base64.StdEncoding.EncodedLen(WireGuardKeyLen) {
		return k, fmt.Errorf("key %s: want base64 of %d bytes (%d characters), got %d characters",
			quoteValue([]byte(s)), WireGuardKeyLen, base64.StdEncoding.EncodedLen(WireGuardKeyLen), len(s))
	}
	// 44 characters decode to at most 33 bytes: decode into room for
	// that, then check the length (Decode writes past a 32-byte buffer).
	var buf [WireGuardKeyLen + 1]byte
	n, err := base64.StdEncoding.Strict().Decode(buf[:], []byte(s))
	copy(k[:], buf[:WireGuardKeyLen])
	if err != nil || n != WireGuardKeyLen {
		return [WireGuardKeyLen]byte{}, fmt.Errorf("key %s: not base64 of %d bytes", quoteValue([]byte(s)), WireGuardKeyLen)
	}
	return k, nil
}

// wireGuardBackendData is BackendData of a wireguard lease (flannel's).
type wireGuardBackendData struct {
	PublicKey string `json:"PublicKey"`
	Port      int    `json:"Port"`
}

// NewWireGuardLeaseAttrs builds the attributes of a wireguard lease:
// {"PublicKey":"<base64>","Port":N} as flannel writes them.
func NewWireGuardLeaseAttrs(publicIP netip.Addr, port int, publicKey [WireGuardKeyLen]byte) LeaseAttrs {
	data, _ := json.Marshal(wireGuardBackendData{PublicKey: base64.StdEncoding.EncodeToString(publicKey[:]), Port: port})
	return LeaseAttrs{PublicIP: publicIP.String(), BackendType: BackendWireGuard, BackendData: data}
}

// WireGuardPublicKey returns the PublicKey of a wireguard lease's
// BackendData, checked to be base64 of 32 bytes.
func (a LeaseAttrs) WireGuardPublicKey() ([WireGuardKeyLen]byte, error) {
	if len(a.BackendData) == 0 {
		return [WireGuardKeyLen]byte{}, errors.New("lease has no BackendData")
	}
	var d wireGuardBackendData
	if err := json.Unmarshal(a.BackendData, &d); err != nil {
		return [WireGuardKeyLen]byte{}, fmt.Errorf("lease BackendData: %w", err)
	}
	k, err := ParseWireGuardKey(d.PublicKey)
	if err != nil {
		return k, fmt.Errorf("lease BackendData: PublicKey: %w", err)
	}
	return k, nil
}

// rawPublicKey is the PublicKey string of BackendData as written (empty
// when there is none), to tell two wireguard leases apart.
func (a LeaseAttrs) rawPublicKey() string {
	var d wireGuardBackendData
	if json.Unmarshal(a.BackendData, &d) != nil {
		return ""
	}
	return d.PublicKey
}
