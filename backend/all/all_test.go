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
		{"backend type ipip", `{"Network":"10.244.0.0/16","Backend":{"Type":"ipip"}}`, `Backend.Type "ipip" is not supported`},
		{"vxlan VNI out of range", `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNI":16777216}}`, `Backend.VNI 16777216 out of range`},
		{"vxlan port out of range, as subnet refuses it", `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","Port":70000}}`, `Backend.Port 70000`},
		{"unknown vxlan field", `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","PSK":"x"}}`, `unknown field "PSK"`},
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
		`{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}`,
		`{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","Directrouting":true}}`,
		`{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNI":42,"Port":4789,"GBP":true,"Learning":false,"MTU":1400}}`,
	} {
		if _, err := Registry().ParseConfig([]byte(ok)); err != nil {
			t.Errorf("ParseConfig(%s): %v", ok, err)
		}
	}
}
