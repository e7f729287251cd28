package subnet

import (
	"net/netip"
	"testing"
)

func TestLeaseFileEnvFamilies(t *testing.T) {
	v4, v6 := netip.MustParsePrefix("10.244.7.0/24"), netip.MustParsePrefix("fd10:244:0:7::/64")
	dual := &Config{Network: netip.MustParsePrefix("10.244.0.0/16"), EnableIPv4: true, EnableIPv6: true, IPv6Network: netip.MustParsePrefix("fd10:244::/56")}
	only4 := &Config{Network: netip.MustParsePrefix("10.244.0.0/16"), EnableIPv4: true}
	env := Lease{Subnet: v4, IPv6Subnet: v6}.FileEnv(dual, 1400, true)
	if env.Network != dual.Network || env.Subnet.String() != "10.244.7.1/24" || env.IPv6Network != dual.IPv6Network ||
		env.IPv6Subnet.String() != "fd10:244:0:7::1/64" || env.MTU != 1400 || !env.IPMasq {
		t.Errorf("dual stack: %+v", env)
	}
	if err := env.Validate(); err != nil {
		t.Errorf("dual-stack env does not validate: %v", err)
	}
	env = Lease{Subnet: v4, IPv6Subnet: v6}.FileEnv(only4, 1468, false)
	if env.IPv6Network.IsValid() || env.IPv6Subnet.IsValid() || env.Subnet.String() != "10.244.7.1/24" {
		t.Errorf("an IPv4 network wrote IPv6 keys: %+v", env)
	}
}

func TestLeaseAttrsWithPublicIPs(t *testing.T) {
	a := LeaseAttrs{PublicIP: "192.0.2.9", PublicIPv6: "2001:db8::9", BackendType: "udp"}
	got := a.WithPublicIPs(netip.MustParseAddr("192.0.2.1"), netip.Addr{})
	if got.PublicIP != "192.0.2.1" || got.PublicIPv6 != "" || got.BackendType != "udp" {
		t.Errorf("IPv4 only: %+v", got)
	}
	got = a.WithPublicIPs(netip.Addr{}, netip.MustParseAddr("2001:db8::1"))
	if got.PublicIP != "" || got.PublicIPv6 != "2001:db8::1" {
		t.Errorf("IPv6 only: %+v", got)
	}
}
