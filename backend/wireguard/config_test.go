package wireguard

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	psk := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	c, err := ParseConfig("", 0, false)
	if err != nil || c.ListenPort != 51820 || c.Mode != "separate" || !c.PSK.IsZero() || c.PersistentKeepaliveInterval != 0 {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	c, err = ParseConfig(`{"ListenPort":51000,"ListenPortV6":51001,"PSK":"`+psk+`","PersistentKeepaliveInterval":25,"Mode":"auto"}`, 0, false)
	if err != nil || c.ListenPort != 51000 || c.ListenPortV6 != 51001 || c.PSK.String() != psk || c.PersistentKeepaliveInterval != 25 || c.Mode != "auto" {
		t.Fatalf("flannel's keys: %+v, %v", c, err)
	}
	c, err = ParseConfig(`{"listenport":4000,"mode":"ipv4"}`, 0, false)
	if err != nil || c.ListenPort != 4000 || c.Mode != "ipv4" {
		t.Fatalf("case-insensitive keys: %+v, %v", c, err)
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name, raw     string
		port          int
		directRouting bool
		wantErr       string
	}{
		{"unknown mode", `{"Mode":"both"}`, 0, false, `Backend.Mode "both"`},
		{"mode not a string", `{"Mode":1}`, 0, false, "Backend (wireguard)"},
		{"psk not base64", `{"PSK":"not a key"}`, 0, false, "Backend.PSK"},
		{"psk too short", `{"PSK":"` + base64.StdEncoding.EncodeToString(make([]byte, 16)) + `"}`, 0, false, "Backend.PSK"},
		{"psk 33 bytes", `{"PSK":"` + base64.StdEncoding.EncodeToString(make([]byte, 33)) + `"}`, 0, false, "Backend.PSK"},
		{"listen port 0", `{"ListenPort":0}`, 0, false, "Backend.ListenPort 0 out of range"},
		{"listen port too big", `{"ListenPort":65536}`, 0, false, "Backend.ListenPort 65536"},
		{"listen port a string", `{"ListenPort":"51820"}`, 0, false, "Backend (wireguard)"},
		{"keepalive negative", `{"PersistentKeepaliveInterval":-1}`, 0, false, "PersistentKeepaliveInterval -1 out of range"},
		{"keepalive a duration string", `{"PersistentKeepaliveInterval":"25s"}`, 0, false, "Backend (wireguard)"},
		{"unknown field", `{"VNI":1}`, 0, false, `Backend: unknown field "VNI"`},
		{"Port", ``, 8285, false, "the wireguard backend's port is ListenPort"},
		{"DirectRouting", ``, 0, true, "DirectRouting does not apply"},
		{"not an object", `[1]`, 0, false, "Backend (wireguard)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig(tt.raw, tt.port, tt.directRouting)
			if err == nil {
				t.Fatalf("ParseConfig(%s) = %+v, want an error containing %q", tt.raw, c, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
}
