package subnet

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
)

// BackendWireGuard encrypts and authenticates every packet between nodes
// with WireGuard (embedded from golang.zx2c4.com/wireguard), configured as
// flannel's "wireguard" backend (its Backend fields: backend/wireguard).
const BackendWireGuard = "wireguard"

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
	a := LeaseAttrs{BackendType: BackendWireGuard, BackendData: data}
	if publicIP.IsValid() { // none on an IPv6-only underlay: the caller sets PublicIPv6
		a.PublicIP = publicIP.String()
	}
	return a
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
