package all

import (
	"strings"
	"testing"

	"github.com/weftnet/weft/backend"
)

// The checks of the Backend section each backend makes, through the
// registry weftctl config set and weftd use (these cases were subnet's
// TestParseConfigErrors before the section became extensible; the same
// inputs, the same errors).
func TestParseConfigBackendErrors(t *testing.T) {
	tests := []struct {
		name, json string
		wantErr    string
	}{
		{"unknown backend field", `{"Network":"10.244.0.0/16","Backend":{"Type":"udp","VNI":1}}`, `Backend: unknown field "VNI"`},
		{"backend type vxlan", `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}`, `Backend.Type "vxlan" is not supported`},
		{"direct routing with host-gw", `{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw","DirectRouting":true}}`, `DirectRouting applies to Type "udp" only`},
		{"unknown host-gw field", `{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw","PSK":"x"}}`, `Backend: unknown field "PSK"`},
		{"what subnet refuses", `{"Network":"10.244.0.0/16","Backend":{"Port":70000}}`, "Backend.Port 70000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Registry().ParseConfig([]byte(tt.json))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ParseConfig(%s) = %+v, %v; want an error containing %q", tt.json, c, err, tt.wantErr)
			}
			if strings.Contains(tt.name, "subnet") {
				return
			}
			if !backend.IsConfigError(err) {
				t.Errorf("%v is not marked as a configuration error", err)
			}
		})
	}
	for _, ok := range []string{
		`{"Network":"10.244.0.0/16"}`,
		`{"Network":"10.244.0.0/16","Backend":{"Type":"udp","Port":9000,"DirectRouting":true}}`,
		`{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"}}`,
	} {
		if _, err := Registry().ParseConfig([]byte(ok)); err != nil {
			t.Errorf("ParseConfig(%s): %v", ok, err)
		}
	}
}
