package all

import (
	"fmt"
	"net/netip"
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
		// A udp node sends from Port .. Port+7 (overlay.DefaultSourcePorts):
		// every weftd failed to start on such a config, after taking its lease.
		{"udp source ports past 65535", `{"Network":"10.244.0.0/16","Backend":{"Type":"udp","Port":65530}}`, "Backend.Port 65530: the udp backend also sends from the 7 ports above it; at most 65528"},
		{"host-gw source ports past 65535", `{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw","Port":65535}}`, "Backend.Port 65535: the host-gw backend also sends from the 7 ports above it; at most 65528"},
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
		`{"Network":"10.244.0.0/16","Backend":{"Type":"udp","Port":65528}}`,
		`{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","Port":65535}}`,
		`{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}`,
		`{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","Directrouting":true}}`,
		`{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNI":42,"Port":4789,"GBP":true,"Learning":false,"MTU":1400}}`,
	} {
		if _, err := Registry().ParseConfig([]byte(ok)); err != nil {
			t.Errorf("ParseConfig(%s): %v", ok, err)
		}
	}
}

// flannel's MTU override (Backend.MTU, flannel PR 1736) on every backend,
// with flannel's meaning: the MTU of the packets sent to the underlay, in
// place of the underlay interface's; containers (the subnet file) get it
// less the backend's overhead. New computes it without touching the host.
func TestMTUOverrideEveryBackend(t *testing.T) {
	tests := []struct {
		backend string
		want    map[int]int // Backend.MTU (0: none) -> containers' MTU on a 1500 underlay
	}{
		{`{"Type":"udp"}`, map[int]int{0: 1468, 1400: 1368, 9000: 8968}},
		{`{"Type":"udp","DirectRouting":true}`, map[int]int{0: 1468, 1400: 1368}},
		{`{"Type":"host-gw"}`, map[int]int{0: 1500, 1400: 1400, 9000: 9000}},
		{`{"Type":"vxlan"}`, map[int]int{0: 1450, 1400: 1350, 9000: 8950}},
		{`{"Type":"wireguard"}`, map[int]int{0: 1440, 1400: 1340, 9000: 8940}},
	}
	for _, tt := range tests {
		for mtu, want := range tt.want {
			section := tt.backend
			if mtu != 0 {
				section = strings.TrimSuffix(section, "}") + fmt.Sprintf(`,"MTU":%d}`, mtu)
			}
			cfg, err := Registry().ParseConfig([]byte(`{"Network":"10.244.0.0/16","Backend":` + section + `}`))
			if err != nil {
				t.Fatalf("%s: %v", section, err)
			}
			if cfg.Backend.MTU != mtu {
				t.Errorf("%s: Backend.MTU %d, want %d", section, cfg.Backend.MTU, mtu)
			}
			// The override survives what weftctl config set stores.
			data, err := cfg.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			again, err := Registry().ParseConfig(data)
			if err != nil || again.Backend != cfg.Backend {
				t.Errorf("%s: stored as %s, read back %+v, %v", section, data, again, err)
			}
			b, err := Registry().New(backend.Node{Config: cfg,
				Underlay: backend.Underlay{Name: "eth0", Index: 2, PublicIP: netip.MustParseAddr("192.0.2.1"), MTU: 1500},
				Options:  backend.Options{StateDir: t.TempDir()}})
			if err != nil {
				t.Fatalf("%s: %v", section, err)
			}
			if got := b.MTU(); got != want {
				t.Errorf("%s: containers get MTU %d, want %d", section, got, want)
			}
			if err := b.Close(); err != nil {
				t.Errorf("%s: Close: %v", section, err)
			}
		}
	}
	// Out of range for the field, or leaving the containers too little:
	// configuration errors of the registry (weftd exits 78).
	for _, bad := range []struct{ section, want string }{
		{`{"Type":"host-gw","MTU":575}`, "Backend.MTU 575 out of range [576, 65535]"},
		{`{"Type":"host-gw","MTU":0}`, "Backend.MTU 0 out of range"},
		{`{"Type":"udp","MTU":-1}`, "Backend.MTU -1 out of range"},
		{`{"Type":"udp","MTU":65536}`, "Backend.MTU 65536 out of range"},
		{`{"Type":"udp","MTU":1400.5}`, "Backend.MTU: want an integer"},
		{`{"Type":"udp","MTU":607}`, `Backend.MTU 607: containers of Type "udp" would get MTU 575`},
		{`{"Type":"host-gw","MTU":65504}`, `containers of Type "host-gw" would get MTU 65504, out of range [576, 65503]`},
		{`{"Type":"vxlan","MTU":625}`, "Backend.MTU 625 out of range [626, 65535]"},
		{`{"Type":"wireguard","MTU":635}`, `Backend.MTU 635: containers of Type "wireguard" would get MTU 575`},
	} {
		_, err := Registry().ParseConfig([]byte(`{"Network":"10.244.0.0/16","Backend":` + bad.section + `}`))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: %v, want an error containing %q", bad.section, err, bad.want)
		}
	}
	// The smallest overrides each backend takes.
	for _, ok := range []string{`{"Type":"udp","MTU":608}`, `{"Type":"host-gw","MTU":576}`, `{"Type":"host-gw","MTU":65503}`,
		`{"Type":"vxlan","MTU":626}`, `{"Type":"wireguard","MTU":636}`, `{"Type":"udp","mtu":65535}`} {
		if _, err := Registry().ParseConfig([]byte(`{"Network":"10.244.0.0/16","Backend":` + ok + `}`)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}
