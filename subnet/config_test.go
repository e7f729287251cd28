package subnet

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseConfigDefaults(t *testing.T) {
	tests := []struct {
		name, json           string
		subnetLen            int
		subnetMin, subnetMax string
		port                 int
	}{
		{"slash16", `{"Network":"10.244.0.0/16"}`, 24, "10.244.1.0", "10.244.255.0", 8285},
		{"slash22 still /24", `{"Network":"10.244.0.0/22"}`, 24, "10.244.1.0", "10.244.3.0", 8285},
		{"slash23 gets prefix+2", `{"Network":"10.244.0.0/23"}`, 25, "10.244.0.128", "10.244.1.128", 8285},
		{"slash28 gets /30", `{"Network":"10.244.0.0/28"}`, 30, "10.244.0.4", "10.244.0.12", 8285},
		{"explicit everything", `{"Network":"10.244.0.0/16","SubnetLen":24,"SubnetMin":"10.244.1.0","SubnetMax":"10.244.254.0","Backend":{"Type":"udp","Port":8285}}`,
			24, "10.244.1.0", "10.244.254.0", 8285},
		{"explicit port", `{"Network":"10.0.0.0/8","SubnetLen":20,"Backend":{"Type":"udp","Port":9000}}`, 20, "10.0.16.0", "10.255.240.0", 9000},
		{"backend without type", `{"Network":"10.244.0.0/16","Backend":{"Port":1234}}`, 24, "10.244.1.0", "10.244.255.0", 1234},
		{"zero IPv6 fields accepted", `{"Network":"10.244.0.0/16","EnableIPv4":true,"EnableIPv6":false,"IPv6Network":"","EnableNFTables":false}`, 24, "10.244.1.0", "10.244.255.0", 8285},
		{"field names case-insensitive like flannel", `{"network":"10.244.0.0/16","subnetlen":26}`, 26, "10.244.0.64", "10.244.255.192", 8285},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tt.json))
			if err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			if c.SubnetLen != tt.subnetLen || c.SubnetMin.String() != tt.subnetMin || c.SubnetMax.String() != tt.subnetMax {
				t.Errorf("got len %d min %s max %s; want %d %s %s", c.SubnetLen, c.SubnetMin, c.SubnetMax, tt.subnetLen, tt.subnetMin, tt.subnetMax)
			}
			if c.Backend.Type != "udp" || c.Backend.Port != tt.port {
				t.Errorf("backend %+v, want udp port %d", c.Backend, tt.port)
			}
			// Round trip through MarshalJSON gives the same config.
			data, err := c.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			again, err := ParseConfig(data)
			if err != nil {
				t.Fatalf("re-parse %s: %v", data, err)
			}
			if *again != *c {
				t.Errorf("round trip changed config: %+v -> %+v", c, again)
			}
		})
	}
}

func TestParseConfigMarshalSchema(t *testing.T) {
	c, err := ParseConfig([]byte(`{"Network":"10.244.0.0/16"}`))
	if err != nil {
		t.Fatal(err)
	}
	data, err := c.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"Network":"10.244.0.0/16","SubnetLen":24,"SubnetMin":"10.244.1.0","SubnetMax":"10.244.255.0","Backend":{"Type":"udp","Port":8285}}`
	if string(data) != want {
		t.Errorf("MarshalJSON:\n got %s\nwant %s", data, want)
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name, json string
		wantErr    string // a substring naming the field or the problem
	}{
		{"empty input", ``, "malformed JSON"},
		{"not JSON", `Network=10.244.0.0/16`, "malformed JSON"},
		{"truncated", `{"Network":"10.244.0.0/16"`, "malformed JSON"},
		{"array", `["10.244.0.0/16"]`, "malformed JSON"},
		{"null", `null`, "malformed JSON"},
		{"trailing data", `{"Network":"10.244.0.0/16"} {}`, "malformed JSON"},
		{"unknown field", `{"Network":"10.244.0.0/16","Netwerk":"x"}`, `unknown field "Netwerk"`},
		{"backend not an object", `{"Network":"10.244.0.0/16","Backend":"udp"}`, "Backend"},
		{"direct routing not a bool", `{"Network":"10.244.0.0/16","Backend":{"Type":"udp","DirectRouting":"yes"}}`, "Backend.DirectRouting: want true or false"},
		{"backend type not a string", `{"Network":"10.244.0.0/16","Backend":{"Type":1}}`, "Backend.Type"},
		{"backend port not a number", `{"Network":"10.244.0.0/16","Backend":{"Port":"x"}}`, "Backend.Port"},
		{"backend port too big", `{"Network":"10.244.0.0/16","Backend":{"Port":70000}}`, "Backend.Port 70000"},
		{"backend port negative", `{"Network":"10.244.0.0/16","Backend":{"Port":-1}}`, "Backend.Port -1"},
		{"backend MTU too small", `{"Network":"10.244.0.0/16","Backend":{"MTU":575}}`, "Backend.MTU 575 out of range [576, 65535]"},
		{"backend MTU 0", `{"Network":"10.244.0.0/16","Backend":{"mtu":0}}`, "Backend.MTU 0 out of range"},
		{"backend MTU too big", `{"Network":"10.244.0.0/16","Backend":{"MTU":65536}}`, "Backend.MTU 65536 out of range"},
		{"backend MTU a string", `{"Network":"10.244.0.0/16","Backend":{"MTU":"1400"}}`, "Backend.MTU: want an integer"},
		{"missing network", `{"SubnetLen":24}`, "Network: missing"},
		{"network not a string", `{"Network":10}`, "Network"},
		{"network not a prefix", `{"Network":"10.244.0.0"}`, "Network"},
		{"network IPv6", `{"Network":"fd00::/64"}`, "Network fd00::/64: only IPv4 here; an IPv6 network goes in IPv6Network"},
		{"network host bits", `{"Network":"10.244.1.0/16"}`, "host bits"},
		// Issue 25 item 6: ranges no container can use.
		{"network loopback", `{"Network":"127.0.0.0/8"}`, "Network 127.0.0.0/8 overlaps loopback"},
		{"network inside loopback", `{"Network":"127.1.0.0/16"}`, "overlaps loopback"},
		{"network this-network", `{"Network":"0.0.0.0/8"}`, `overlaps "this network"`},
		{"network everything", `{"Network":"0.0.0.0/0"}`, `overlaps "this network"`},
		{"network link-local", `{"Network":"169.254.0.0/16"}`, "overlaps link-local"},
		{"network multicast", `{"Network":"224.0.0.0/16"}`, "overlaps multicast"},
		{"network reserved", `{"Network":"240.0.0.0/16"}`, "overlaps reserved"},
		{"network with broadcast", `{"Network":"255.255.255.0/24"}`, "overlaps reserved and broadcast"},
		{"network spanning multicast", `{"Network":"192.0.0.0/2"}`, "overlaps multicast"},
		{"network too small", `{"Network":"10.244.0.0/29"}`, "too small"},
		{"subnetlen not a number", `{"Network":"10.244.0.0/16","SubnetLen":"24"}`, "SubnetLen"},
		{"subnetlen negative", `{"Network":"10.244.0.0/16","SubnetLen":-1}`, "SubnetLen -1"},
		{"subnetlen over 30", `{"Network":"10.244.0.0/16","SubnetLen":31}`, "SubnetLen 31"},
		{"subnetlen too few subnets", `{"Network":"10.244.0.0/16","SubnetLen":17}`, "SubnetLen 17"},
		{"subnetmin not a string", `{"Network":"10.244.0.0/16","SubnetMin":1}`, "SubnetMin"},
		{"subnetmin not an address", `{"Network":"10.244.0.0/16","SubnetMin":"ten"}`, "SubnetMin"},
		{"subnetmin IPv6", `{"Network":"10.244.0.0/16","SubnetMin":"fd00::"}`, "SubnetMin fd00::"},
		{"subnetmin outside", `{"Network":"10.244.0.0/16","SubnetMin":"10.245.0.0"}`, "SubnetMin 10.245.0.0 is not inside"},
		{"subnetmax outside", `{"Network":"10.244.0.0/16","SubnetMax":"10.245.0.0"}`, "SubnetMax 10.245.0.0 is not inside"},
		{"subnetmax not an address", `{"Network":"10.244.0.0/16","SubnetMax":"x"}`, "SubnetMax"},
		{"subnetmin unaligned", `{"Network":"10.244.0.0/16","SubnetMin":"10.244.1.5"}`, "SubnetMin 10.244.1.5 is not on a /24 boundary"},
		{"subnetmax unaligned", `{"Network":"10.244.0.0/16","SubnetMax":"10.244.9.128"}`, "SubnetMax 10.244.9.128 is not on a /24 boundary"},
		{"min after max", `{"Network":"10.244.0.0/16","SubnetMin":"10.244.9.0","SubnetMax":"10.244.3.0"}`, "SubnetMin 10.244.9.0 is after SubnetMax"},
		{"EnableIPv6 without IPv6Network", `{"Network":"10.244.0.0/16","EnableIPv6":true}`, "IPv6Network: missing"},
		{"IPv6Network without EnableIPv6", `{"Network":"10.244.0.0/16","IPv6Network":"fd00::/56"}`, `need "EnableIPv6": true`},
		{"IPv6SubnetLen without EnableIPv6", `{"Network":"10.244.0.0/16","IPv6SubnetLen":64}`, `need "EnableIPv6": true`},
		{"IPv6SubnetMin without EnableIPv6", `{"Network":"10.244.0.0/16","IPv6SubnetMin":"fd00::"}`, `need "EnableIPv6": true`},
		{"IPv6SubnetMax without EnableIPv6", `{"Network":"10.244.0.0/16","IPv6SubnetMax":"fd00::"}`, `need "EnableIPv6": true`},
		{"IPv6SubnetLen over 126", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/56","IPv6SubnetLen":127}`, "IPv6SubnetLen 127: must be /126 or shorter"},
		{"IPv6SubnetLen over 128", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/56","IPv6SubnetLen":129}`, "IPv6SubnetLen 129"},
		{"IPv6SubnetLen does not fit", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:244::/56","IPv6SubnetLen":48}`, "IPv6SubnetLen 48 does not fit IPv6Network fd10:244::/56"},
		{"IPv6SubnetLen too few subnets", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:244::/56","IPv6SubnetLen":57}`, "at least four subnets (IPv6SubnetLen >= 58)"},
		{"IPv6SubnetLen negative", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/56","IPv6SubnetLen":-64}`, "IPv6SubnetLen -64 is negative"},
		{"IPv6SubnetLen not a number", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/56","IPv6SubnetLen":"64"}`, "IPv6SubnetLen"},
		{"IPv6Network too small", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/125"}`, "IPv6Network fd00::/125 is too small"},
		{"IPv6Network IPv4", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"10.1.0.0/16"}`, "IPv6Network 10.1.0.0/16: not an IPv6 network"},
		{"IPv6Network mapped", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"::ffff:10.1.0.0/112"}`, "not an IPv6 network"},
		{"IPv6Network host bits", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::1/56"}`, "host bits set (did you mean fd00::/56?)"},
		{"IPv6Network link-local", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fe80::/56"}`, "overlaps link-local"},
		{"IPv6Network multicast", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"ff02::/56"}`, "overlaps multicast"},
		{"IPv6Network loopback", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"::/64"}`, "overlaps reserved"},
		{"IPv6Network everything", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"::/0"}`, "overlaps reserved"},
		{"IPv6Network not a string", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":6}`, "IPv6Network"},
		{"IPv6SubnetMin outside", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:244::/56","IPv6SubnetMin":"fd10:245::"}`, "IPv6SubnetMin fd10:245:: is not inside IPv6Network fd10:244::/56"},
		{"IPv6SubnetMax outside", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:244::/56","IPv6SubnetMax":"fd10:245::"}`, "IPv6SubnetMax fd10:245:: is not inside"},
		{"IPv6SubnetMin unaligned", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:244::/56","IPv6SubnetMin":"fd10:244:0:1::1"}`, "IPv6SubnetMin fd10:244:0:1::1 is not on a /64 boundary"},
		{"IPv6SubnetMax unaligned", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:244::/56","IPv6SubnetMax":"fd10:244:0:1:8000::"}`, "IPv6SubnetMax fd10:244:0:1:8000:: is not on a /64 boundary"},
		{"IPv6SubnetMin IPv4", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:244::/56","IPv6SubnetMin":"10.1.0.0"}`, "IPv6SubnetMin 10.1.0.0: not an IPv6 address"},
		{"IPv6 min after max", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:244::/56","IPv6SubnetMin":"fd10:244:0:9::","IPv6SubnetMax":"fd10:244:0:3::"}`, "IPv6SubnetMin fd10:244:0:9:: is after IPv6SubnetMax fd10:244:0:3::"},
		{"IPv6-only with Network", `{"EnableIPv4":false,"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/56"}`, `"EnableIPv4": false turns off`},
		{"no family", `{"EnableIPv4":false}`, "EnableIPv4 and EnableIPv6 are both false"},
		{"EnableIPv6 not a bool", `{"Network":"10.244.0.0/16","EnableIPv6":1}`, "EnableIPv6"},
		{"IPv6Networks", `{"Network":"10.244.0.0/16","IPv6Networks":["fd00::/56"]}`, "IPv6Networks: not supported yet"},
		{"Networks", `{"Network":"10.244.0.0/16","Networks":["10.1.0.0/16"]}`, "Networks: not supported yet"},
		{"EnableNFTables", `{"Network":"10.244.0.0/16","EnableNFTables":true}`, "EnableNFTables: not supported yet"},
		{"EnableIPv4 not a bool", `{"Network":"10.244.0.0/16","EnableIPv4":"yes"}`, "EnableIPv4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tt.json))
			if err == nil {
				t.Fatalf("ParseConfig(%s) = %+v, want an error containing %q", tt.json, c, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestConfigContainsAndCount(t *testing.T) {
	c, err := ParseConfig([]byte(`{"Network":"10.244.0.0/16","SubnetMin":"10.244.10.0","SubnetMax":"10.244.59.0"}`))
	if err != nil {
		t.Fatal(err)
	}
	if n := c.subnetCount(); n != 50 {
		t.Errorf("subnetCount = %d, want 50", n)
	}
	if got := c.subnetAt(49); got != netip.MustParsePrefix("10.244.59.0/24") {
		t.Errorf("subnetAt(49) = %s", got)
	}
	for s, want := range map[string]bool{
		"10.244.10.0/24": true, "10.244.59.0/24": true, "10.244.9.0/24": false,
		"10.244.60.0/24": false, "10.244.10.0/25": false, "10.244.10.0/23": false,
	} {
		if got := c.Contains(netip.MustParsePrefix(s)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", s, got, want)
		}
	}
}

func TestLeaseKeyNames(t *testing.T) {
	p := netip.MustParsePrefix("10.244.30.0/24")
	if got := subnetKeyName(p); got != "10.244.30.0-24" {
		t.Errorf("subnetKeyName = %q", got)
	}
	if got, err := parseSubnetKeyName("10.244.30.0-24"); err != nil || got != p {
		t.Errorf("parseSubnetKeyName = %v, %v", got, err)
	}
	for _, bad := range []string{"10.244.30.0", "10.244.30.1-24", "x-24", "10.244.30.0-99", "fd00::-64"} {
		if _, err := parseSubnetKeyName(bad); err == nil {
			t.Errorf("parseSubnetKeyName(%q) succeeded", bad)
		}
	}
}

func TestLeaseAttrsPort(t *testing.T) {
	a := NewLeaseAttrs(netip.MustParseAddr("192.0.2.1"), 8285)
	if string(a.BackendData) != `{"Port":8285}` {
		t.Errorf("BackendData = %s", a.BackendData)
	}
	if p, err := a.Port(); err != nil || p != 8285 {
		t.Errorf("Port = %d, %v", p, err)
	}
	for _, v := range []string{
		`{"PublicIP":"192.0.2.1","BackendType":"udp"}`,
		`{"PublicIP":"192.0.2.1","BackendType":"udp","BackendData":{"Port":0}}`,
		`{"PublicIP":"nope","BackendType":"udp","BackendData":{"Port":1}}`,
		`{"PublicIP":"192.0.2.1","BackendType":"udp","BackendData":{"Port":"x"}}`,
		`not json`,
	} {
		if _, err := parseLeaseAttrs([]byte(v)); err == nil {
			t.Errorf("parseLeaseAttrs(%s) succeeded", v)
		}
	}
}

func TestParseConfigDirectRouting(t *testing.T) {
	tests := []struct {
		name, json    string
		typ           string
		directRouting bool
		marshalled    string
	}{
		{"udp with DirectRouting", `{"Network":"10.244.0.0/16","Backend":{"Type":"udp","DirectRouting":true}}`, "udp", true,
			`"Backend":{"Type":"udp","Port":8285,"DirectRouting":true}`},
		{"DirectRouting false is the default", `{"Network":"10.244.0.0/16","Backend":{"Type":"udp","DirectRouting":false}}`, "udp", false,
			`"Backend":{"Type":"udp","Port":8285}`},
		{"key case-insensitive", `{"Network":"10.244.0.0/16","Backend":{"directrouting":true}}`, "udp", true,
			`"Backend":{"Type":"udp","Port":8285,"DirectRouting":true}`},
		{"host-gw", `{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"}}`, "host-gw", false,
			`"Backend":{"Type":"host-gw","Port":8285}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tt.json))
			if err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			if c.Backend.Type != tt.typ || c.Backend.DirectRouting != tt.directRouting {
				t.Errorf("backend %+v, want type %s DirectRouting %v", c.Backend, tt.typ, tt.directRouting)
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
		})
	}
}

func TestLeaseAttrsFor(t *testing.T) {
	ip := netip.MustParseAddr("192.0.2.1")
	udp := LeaseAttrsFor(Backend{Type: BackendUDP, Port: 8285, DirectRouting: true}, ip)
	if udp.BackendType != "udp" || string(udp.BackendData) != `{"Port":8285}` || udp.PublicIP != "192.0.2.1" {
		t.Errorf("udp lease attrs = %+v", udp)
	}
	gw := LeaseAttrsFor(Backend{Type: BackendHostGW, Port: 8285}, ip)
	if gw.BackendType != "host-gw" || gw.BackendData != nil || gw.PublicIP != "192.0.2.1" {
		t.Errorf("host-gw lease attrs = %+v", gw)
	}
	for _, a := range []LeaseAttrs{udp, gw} {
		v, err := a.marshal()
		if err != nil {
			t.Fatal(err)
		}
		back, err := parseLeaseAttrs([]byte(v))
		if err != nil || !back.equal(a) {
			t.Errorf("parseLeaseAttrs(%s) = %+v, %v", v, back, err)
		}
	}
	// A host-gw lease needs no port, but still a valid PublicIP.
	if _, err := parseLeaseAttrs([]byte(`{"PublicIP":"nope","BackendType":"host-gw"}`)); err == nil {
		t.Error("host-gw lease with a bad PublicIP accepted")
	}
}

// Issue 25 item 6: a Network that holds this node's underlay address or
// overlaps its underlay network is refused; one apart from both is not.
func TestConfigCheckUnderlay(t *testing.T) {
	c, err := ParseConfig([]byte(`{"Network":"192.0.0.0/16"}`))
	if err != nil {
		t.Fatal(err)
	}
	pub := netip.MustParseAddr("192.0.2.1")
	if err := c.CheckUnderlay(pub, nil); err == nil || !strings.Contains(err.Error(), "contains this node's PublicIP 192.0.2.1") {
		t.Fatalf("Network holding the PublicIP: %v", err)
	}
	other := netip.MustParseAddr("198.51.100.7")
	if err := c.CheckUnderlay(other, []netip.Prefix{netip.MustParsePrefix("192.0.0.0/8")}); err == nil || !strings.Contains(err.Error(), "overlaps this node's underlay network 192.0.0.0/8") {
		t.Fatalf("Network inside the underlay network: %v", err)
	}
	if err := c.CheckUnderlay(other, []netip.Prefix{netip.MustParsePrefix("192.0.3.9/24")}); err == nil || !strings.Contains(err.Error(), "192.0.3.0/24") {
		t.Fatalf("underlay network inside the Network: %v", err)
	}
	if err := c.CheckUnderlay(other, []netip.Prefix{netip.MustParsePrefix("198.51.100.7/24")}); err != nil {
		t.Fatalf("a Network apart from the underlay refused: %v", err)
	}
}

// The Backend section's backend-specific fields are kept (Raw, canonical)
// for the backend to decode, and survive MarshalJSON and ParseConfig; the
// checks of each type are the backend's (backend/all's tests).
func TestParseConfigBackendRaw(t *testing.T) {
	c, err := ParseConfig([]byte(`{"Network":"10.244.0.0/16","Backend":{"vni":2,"Type":"vxlan","GBP":true,"directRouting":true}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Backend.Type != "vxlan" || c.Backend.Port != 0 || !c.Backend.DirectRouting || c.Backend.Raw != `{"GBP":true,"vni":2}` {
		t.Fatalf("backend %+v", c.Backend)
	}
	data, err := c.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if want := `"Backend":{"Type":"vxlan","DirectRouting":true,"GBP":true,"vni":2}`; !strings.Contains(string(data), want) {
		t.Errorf("marshalled %s, want %s", data, want)
	}
	again, err := ParseConfig(data)
	if err != nil || *again != *c {
		t.Errorf("round trip: %+v, %v; want %+v", again, err, c)
	}
	var vx struct {
		VNI int
		GBP bool
	}
	if err := c.Backend.DecodeRaw(&vx); err != nil || vx.VNI != 2 || !vx.GBP {
		t.Errorf("DecodeRaw: %+v, %v", vx, err)
	}
	var other struct{ PSK string }
	if err := c.Backend.DecodeRaw(&other); err == nil || !strings.Contains(err.Error(), `Backend: unknown field "GBP"`) {
		t.Errorf("DecodeRaw into another backend's fields: %v", err)
	}
	for _, typ := range []string{"udp", "host-gw", ""} {
		c, err := ParseConfig([]byte(`{"Network":"10.244.0.0/16","Backend":{"Type":"` + typ + `"}}`))
		if err != nil || c.Backend.Port != DefaultBackendPort {
			t.Errorf("type %q: port %+v, %v; want flannel's default %d", typ, c, err, DefaultBackendPort)
		}
	}
}
