package subnet

import (
	"encoding/json"
	"net/netip"
	"testing"
)

// The IPv6 fields with flannel's defaults and checks
// (pkg/subnet/config.go: IPv6SubnetLen 64 for networks of /62 or wider,
// prefix+2 below; IPv6SubnetMin the second subnet, IPv6SubnetMax the last).
func TestParseConfigIPv6Defaults(t *testing.T) {
	tests := []struct {
		name, json string
		v4         bool
		len6       int
		min6, max6 string
	}{
		{"issue 21's dual stack", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:244::/56","IPv6SubnetLen":64,"Backend":{"Type":"udp"}}`,
			true, 64, "fd10:244:0:1::", "fd10:244:0:ff::"},
		{"default /64", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:244::/48"}`, true, 64, "fd10:244:0:1::", "fd10:244:0:ffff::"},
		{"/62 still /64", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:244::/62"}`, true, 64, "fd10:244:0:1::", "fd10:244:0:3::"},
		{"/63 gets prefix+2", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:244::/63"}`, true, 65, "fd10:244:0:0:8000::", "fd10:244:0:1:8000::"},
		{"/124 gets /126", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:244::/124"}`, true, 126, "fd10:244::4", "fd10:244::c"},
		{"IPv6-only", `{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd10:244::/56"}`, false, 64, "fd10:244:0:1::", "fd10:244:0:ff::"},
		{"huge network", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/8","IPv6SubnetLen":120}`, true, 120, "fd00::100", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ff00"},
		{"explicit range", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:244::/56","IPv6SubnetMin":"fd10:244:0:10::","IPv6SubnetMax":"fd10:244:0:20::"}`,
			true, 64, "fd10:244:0:10::", "fd10:244:0:20::"},
		{"zero-valued optional fields", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:244::/56","IPv6SubnetLen":0,"IPv6SubnetMin":"","IPv6SubnetMax":""}`,
			true, 64, "fd10:244:0:1::", "fd10:244:0:ff::"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tt.json))
			if err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			if !c.HasIPv6() || c.HasIPv4() != tt.v4 {
				t.Errorf("HasIPv4 %v HasIPv6 %v, want %v true", c.HasIPv4(), c.HasIPv6(), tt.v4)
			}
			if c.IPv6SubnetLen != tt.len6 || c.IPv6SubnetMin.String() != tt.min6 || c.IPv6SubnetMax.String() != tt.max6 {
				t.Errorf("got len %d min %s max %s; want %d %s %s", c.IPv6SubnetLen, c.IPv6SubnetMin, c.IPv6SubnetMax, tt.len6, tt.min6, tt.max6)
			}
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

// An IPv4 config is written as before (no IPv6 or EnableIPv4 fields); an
// IPv6-only one says EnableIPv4 false, as flanneld reads it.
func TestMarshalConfigFamilies(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`{"Network":"10.244.0.0/16"}`, `{"Network":"10.244.0.0/16","SubnetLen":24,"SubnetMin":"10.244.1.0","SubnetMax":"10.244.255.0","Backend":{"Type":"udp","Port":8285}}`},
		{`{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:244::/56"}`,
			`{"EnableIPv6":true,"Network":"10.244.0.0/16","SubnetLen":24,"SubnetMin":"10.244.1.0","SubnetMax":"10.244.255.0","IPv6Network":"fd10:244::/56","IPv6SubnetLen":64,"IPv6SubnetMin":"fd10:244:0:1::","IPv6SubnetMax":"fd10:244:0:ff::","Backend":{"Type":"udp","Port":8285}}`},
		{`{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd10:244::/56"}`,
			`{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd10:244::/56","IPv6SubnetLen":64,"IPv6SubnetMin":"fd10:244:0:1::","IPv6SubnetMax":"fd10:244:0:ff::","Backend":{"Type":"udp","Port":8285}}`},
	} {
		c, err := ParseConfig([]byte(tt.in))
		if err != nil {
			t.Fatal(err)
		}
		data, err := c.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if string(data) != tt.want {
			t.Errorf("MarshalJSON(%s)\n got %s\nwant %s", tt.in, data, tt.want)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
	}
}

func TestContainsFamilies(t *testing.T) {
	c, err := ParseConfig([]byte(`{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:244::/56"}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		p    string
		want bool
	}{
		{"10.244.1.0/24", true}, {"10.244.0.0/24", false}, {"fd10:244:0:1::/64", true}, {"fd10:244::/64", false},
		{"fd10:244:0:100::/64", false}, {"fd10:244:0:1::/63", false}, {"fd10:244:0:1::/80", false},
	} {
		if got := c.Contains(mustPrefix(t, tt.p)); got != tt.want {
			t.Errorf("Contains(%s) = %v, want %v", tt.p, got, tt.want)
		}
	}
	four, _ := ParseConfig([]byte(`{"Network":"10.244.0.0/16"}`))
	if four.Contains(mustPrefix(t, "fd10:244:0:1::/64")) {
		t.Error("an IPv4 network contains an IPv6 subnet")
	}
}

func TestSubnetAt6(t *testing.T) {
	c, err := ParseConfig([]byte(`{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:244::/56"}`))
	if err != nil {
		t.Fatal(err)
	}
	if n := c.subnetCount6(); n != 255 {
		t.Errorf("subnetCount6 = %d, want 255", n)
	}
	if s := c.subnetAt6(0).String(); s != "fd10:244:0:1::/64" {
		t.Errorf("subnetAt6(0) = %s", s)
	}
	if s := c.subnetAt6(254).String(); s != "fd10:244:0:ff::/64" {
		t.Errorf("subnetAt6(254) = %s", s)
	}
	huge, err := ParseConfig([]byte(`{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/8","IPv6SubnetLen":120}`))
	if err != nil {
		t.Fatal(err)
	}
	if n := huge.subnetCount6(); n != 1<<maxIPv6IndexBits {
		t.Errorf("subnetCount6 of fd00::/8 in /120s = %d, want the cap 2^%d", n, maxIPv6IndexBits)
	}
	if s := huge.subnetAt6(1<<maxIPv6IndexBits - 1); !huge.Contains(s) {
		t.Errorf("last considered subnet %s not in the network's range", s)
	}
}

func mustPrefix(t *testing.T, s string) netip.Prefix {
	t.Helper()
	p, err := netip.ParsePrefix(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
