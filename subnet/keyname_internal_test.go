package subnet

import (
	"net/netip"
	"testing"
)

func TestDualStackKeyNames(t *testing.T) {
	v4 := netip.MustParsePrefix("10.5.1.0/24")
	v6 := netip.MustParsePrefix("fc00::/64")
	for _, tt := range []struct {
		v4, v6 netip.Prefix
		name   string
	}{
		{v4, netip.Prefix{}, "10.5.1.0-24"},
		{v4, v6, "10.5.1.0-24&fc00::-64"},
		{netip.Prefix{}, v6, "0.0.0.0-0&fc00::-64"},
	} {
		if got := leaseKeyName(tt.v4, tt.v6); got != tt.name {
			t.Errorf("leaseKeyName(%s, %s) = %q, want %q", tt.v4, tt.v6, got, tt.name)
		}
		a, b, err := parseLeaseKeyName(tt.name)
		if err != nil || a != tt.v4 || b != tt.v6 {
			t.Errorf("parseLeaseKeyName(%q) = %s, %s, %v", tt.name, a, b, err)
		}
	}
	// IPv6 alone, as V6PLAN first named it, is read too.
	if a, b, err := parseLeaseKeyName("fc00::-64"); err != nil || a.IsValid() || b != v6 {
		t.Errorf("fc00::-64: %s %s %v", a, b, err)
	}
	for _, bad := range []string{
		"", "&", "10.5.1.0-24&", "&fc00::-64", "0.0.0.0-0", "10.5.1.0-24&10.5.2.0-24", "fc00::-64&10.5.1.0-24",
		"10.5.1.0-24&FC00::-64", "10.5.1.0-24&fc00:0::-64", "10.5.1.0-24&fc00::1-64", "10.5.1.0-24&fc00::-129",
		"10.5.1.0-24&::ffff:10.0.0.0-112", "10.5.1.0-24&fe80::%eth0-64", "10.5.1.1-24&fc00::-64", "fc00::-64-1",
		"10.5.1.0-24&fc00::-64&fc01::-64",
	} {
		if a, b, err := parseLeaseKeyName(bad); err == nil {
			t.Errorf("parseLeaseKeyName(%q) = %s, %s: want an error", bad, a, b)
		}
	}
}

func TestLeaseAttrsFamilies(t *testing.T) {
	for _, tt := range []struct {
		value string
		ok    bool
	}{
		{`{"PublicIP":"192.0.2.1","PublicIPv6":"2001:db8::1","BackendType":"udp","BackendData":{"Port":8285}}`, true},
		{`{"PublicIP":"192.0.2.1","PublicIPv6":null,"BackendType":"udp","BackendData":{"Port":8285}}`, true},
		{`{"PublicIPv6":"2001:db8::1","BackendType":"udp","BackendData":{"Port":8285}}`, true},
		{`{"PublicIP":"0.0.0.0","PublicIPv6":"2001:db8::1","BackendType":"host-gw"}`, true},
		{`{"PublicIP":"0.0.0.0","BackendType":"host-gw"}`, false},
		{`{"BackendType":"host-gw"}`, false},
		{`{"PublicIP":"192.0.2.1","PublicIPv6":"fe80::1","BackendType":"host-gw"}`, false},
		{`{"PublicIP":"192.0.2.1","PublicIPv6":"::1","BackendType":"host-gw"}`, false},
		{`{"PublicIP":"192.0.2.1","PublicIPv6":"ff02::1","BackendType":"host-gw"}`, false},
		{`{"PublicIP":"192.0.2.1","PublicIPv6":"::ffff:192.0.2.1","BackendType":"host-gw"}`, false},
		{`{"PublicIP":"192.0.2.1","PublicIPv6":"192.0.2.1","BackendType":"host-gw"}`, false},
		{`{"PublicIP":"2001:db8::1","BackendType":"host-gw"}`, false},
	} {
		a, err := parseLeaseAttrs([]byte(tt.value))
		if (err == nil) != tt.ok {
			t.Errorf("parseLeaseAttrs(%s) = %+v, %v; want ok=%v", tt.value, a, err, tt.ok)
		}
	}
}
