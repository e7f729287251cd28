package subnet

import (
	"encoding/base64"
	"net/netip"
	"strings"
	"testing"
)

func TestParseConfigWireGuard(t *testing.T) {
	psk := base64.StdEncoding.EncodeToString(make([]byte, 32))
	tests := []struct {
		name, json string
		want       WireGuardConfig
		marshalled string
	}{
		{"defaults", `{"Network":"10.244.0.0/16","Backend":{"Type":"wireguard"}}`,
			WireGuardConfig{ListenPort: 51820, Mode: "separate"},
			`"Backend":{"Type":"wireguard","ListenPort":51820,"Mode":"separate"}`},
		{"flannel's keys", `{"Network":"10.244.0.0/16","Backend":{"Type":"wireguard","ListenPort":51000,"ListenPortV6":51001,"PSK":"` + psk + `","PersistentKeepaliveInterval":25,"Mode":"auto"}}`,
			WireGuardConfig{ListenPort: 51000, ListenPortV6: 51001, PSK: psk, PersistentKeepaliveInterval: 25, Mode: "auto"},
			`"Backend":{"Type":"wireguard","ListenPort":51000,"ListenPortV6":51001,"PSK":"` + psk + `","PersistentKeepaliveInterval":25,"Mode":"auto"}`},
		{"keys case-insensitive, ipv4 mode", `{"Network":"10.244.0.0/16","Backend":{"type":"wireguard","listenport":4000,"mode":"ipv4"}}`,
			WireGuardConfig{ListenPort: 4000, Mode: "ipv4"},
			`"Backend":{"Type":"wireguard","ListenPort":4000,"Mode":"ipv4"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tt.json))
			if err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			if c.Backend.Type != BackendWireGuard || c.Backend.WireGuard != tt.want || c.Backend.Port != tt.want.ListenPort {
				t.Errorf("backend %+v, want wireguard %+v on port %d", c.Backend, tt.want, tt.want.ListenPort)
			}
			data, err := c.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(data), tt.marshalled) {
				t.Errorf("marshalled %s, want it to contain %s", data, tt.marshalled)
			}
			again, err := ParseConfig(data)
			if err != nil || *again != *c {
				t.Errorf("round trip: %+v, %v; want %+v", again, err, c)
			}
			if err := c.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestParseConfigWireGuardErrors(t *testing.T) {
	tests := []struct{ name, backend, wantErr string }{
		{"ipv6 mode", `{"Type":"wireguard","Mode":"ipv6"}`, `Mode "ipv6": weft's networks are IPv4-only`},
		{"unknown mode", `{"Type":"wireguard","Mode":"both"}`, `Backend.Mode "both"`},
		{"mode not a string", `{"Type":"wireguard","Mode":1}`, "Backend.Mode: want a string"},
		{"psk not base64", `{"Type":"wireguard","PSK":"not a key"}`, "Backend.PSK"},
		{"psk too short", `{"Type":"wireguard","PSK":"` + base64.StdEncoding.EncodeToString(make([]byte, 16)) + `"}`, "Backend.PSK"},
		{"psk not a string", `{"Type":"wireguard","PSK":1}`, "Backend.PSK: want a string"},
		{"listen port 0", `{"Type":"wireguard","ListenPort":0}`, "Backend.ListenPort 0 out of range"},
		{"listen port too big", `{"Type":"wireguard","ListenPort":65536}`, "Backend.ListenPort 65536"},
		{"listen port not a number", `{"Type":"wireguard","ListenPort":"51820"}`, "Backend.ListenPort: want an integer"},
		{"keepalive negative", `{"Type":"wireguard","PersistentKeepaliveInterval":-1}`, "PersistentKeepaliveInterval -1 out of range"},
		{"keepalive a duration string", `{"Type":"wireguard","PersistentKeepaliveInterval":"25s"}`, "want an integer number of seconds"},
		{"Port with wireguard", `{"Type":"wireguard","Port":8285}`, "the wireguard backend's port is ListenPort"},
		{"DirectRouting with wireguard", `{"Type":"wireguard","DirectRouting":true}`, `DirectRouting applies to Type "udp" only`},
		{"wireguard key on udp", `{"Type":"udp","ListenPort":51820}`, `apply to Type "wireguard" only`},
		{"wireguard key without type", `{"PSK":"` + base64.StdEncoding.EncodeToString(make([]byte, 32)) + `"}`, `apply to Type "wireguard" only`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			js := `{"Network":"10.244.0.0/16","Backend":` + tt.backend + `}`
			c, err := ParseConfig([]byte(js))
			if err == nil {
				t.Fatalf("ParseConfig(%s) = %+v, want an error containing %q", js, c.Backend, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
}

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
