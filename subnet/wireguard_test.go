package subnet

import (
	"encoding/base64"
	"net/netip"
	"strings"
	"testing"
)

func TestWireGuardLeaseAttrs(t *testing.T) {
	var key [32]byte
	for i := range key {
		key[i] = byte(i)
	}
	a := NewWireGuardLeaseAttrs(netip.MustParseAddr("192.0.2.1"), 51820, key)
	want := `{"PublicKey":"` + base64.StdEncoding.EncodeToString(key[:]) + `","Port":51820}`
	if string(a.BackendData) != want || a.BackendType != "wireguard" {
		t.Errorf("attrs %+v, BackendData %s; want %s", a, a.BackendData, want)
	}
	if got, err := a.WireGuardPublicKey(); err != nil || got != key {
		t.Errorf("WireGuardPublicKey = %x, %v", got, err)
	}
	v, err := a.marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := parseLeaseAttrs([]byte(v))
	if err != nil || !back.equal(a) {
		t.Fatalf("parseLeaseAttrs(%s) = %+v, %v", v, back, err)
	}
	if p, err := back.Port(); err != nil || p != 51820 {
		t.Errorf("Port = %d, %v", p, err)
	}
	// Another key on the same address and port is another endpoint: the
	// lease keeper puts this node's key back.
	other := key
	other[0] ^= 1
	b := NewWireGuardLeaseAttrs(netip.MustParseAddr("192.0.2.1"), 51820, other)
	if a.sameEndpoint(b) || !a.sameEndpoint(a) {
		t.Error("sameEndpoint ignores the PublicKey")
	}
	// Malformed keys: the lease itself is usable (the backend ignores and
	// counts the peer), the key is refused.
	for _, data := range []string{
		`{"Port":51820}`,
		`{"PublicKey":"","Port":51820}`,
		`{"PublicKey":"AAAA","Port":51820}`,
		`{"PublicKey":"` + strings.Repeat("!", 44) + `","Port":51820}`,
		`{"PublicKey":"` + base64.StdEncoding.EncodeToString(make([]byte, 33)) + `","Port":51820}`,
		`{"PublicKey":"` + base64.RawStdEncoding.EncodeToString(make([]byte, 32)) + `","Port":51820}`,
		`{"PublicKey":1,"Port":51820}`,
	} {
		a := LeaseAttrs{PublicIP: "192.0.2.1", BackendType: BackendWireGuard, BackendData: []byte(data)}
		if k, err := a.WireGuardPublicKey(); err == nil {
			t.Errorf("WireGuardPublicKey(%s) = %x, want an error", data, k)
		}
	}
}
