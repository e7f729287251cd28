package guard

import (
	"net/netip"
	"strings"
	"testing"
)

func TestSpecValidate(t *testing.T) {
	good := Spec{Bridge: "weftbr0", Subnet: netip.MustParsePrefix("10.244.7.0/24"), Network: netip.MustParsePrefix("10.244.0.0/16"), Port: 8285}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	dual := good
	dual.Subnet6, dual.Network6 = netip.MustParsePrefix("fd10:244:0:7::/64"), netip.MustParsePrefix("fd10:244::/56")
	v6only := dual
	v6only.Subnet, v6only.Network = netip.Prefix{}, netip.Prefix{}
	for _, s := range []Spec{dual, v6only} {
		if err := s.Validate(); err != nil {
			t.Errorf("%+v: %v", s, err)
		}
	}
	for name, mutate := range map[string]func(*Spec){
		"no bridge":         func(s *Spec) { s.Bridge = "" },
		"long bridge":       func(s *Spec) { s.Bridge = "a-very-long-bridge" },
		"no subnet":         func(s *Spec) { s.Subnet = netip.Prefix{} },
		"ipv6 subnet":       func(s *Spec) { s.Subnet = netip.MustParsePrefix("fd00::/64") },
		"subnet outside":    func(s *Spec) { s.Subnet = netip.MustParsePrefix("10.245.7.0/24") },
		"network narrower":  func(s *Spec) { s.Network = netip.MustParsePrefix("10.244.7.0/25") },
		"port 0":            func(s *Spec) { s.Port = 0 },
		"etcd port 0":       func(s *Spec) { s.EtcdPorts = []uint16{2379, 0} },
		"no family":         func(s *Spec) { s.Subnet, s.Network = netip.Prefix{}, netip.Prefix{} },
		"ipv6 subnet only":  func(s *Spec) { s.Subnet6 = netip.MustParsePrefix("fd10:244:7::/64") },
		"ipv6 network only": func(s *Spec) { s.Network6 = netip.MustParsePrefix("fd10:244::/56") },
		"ipv6 subnet outside": func(s *Spec) {
			s.Subnet6, s.Network6 = netip.MustParsePrefix("fd10:245::/64"), netip.MustParsePrefix("fd10:244::/56")
		},
		"ipv6 network narrower": func(s *Spec) {
			s.Subnet6, s.Network6 = netip.MustParsePrefix("fd10:244::/64"), netip.MustParsePrefix("fd10:244::/80")
		},
		"ipv4 as ipv6 subnet": func(s *Spec) {
			s.Subnet6, s.Network6 = netip.MustParsePrefix("10.244.7.0/24"), netip.MustParsePrefix("10.244.0.0/16")
		},
	} {
		s := good
		mutate(&s)
		if err := s.Validate(); err == nil || !strings.HasPrefix(err.Error(), "guard: ") {
			t.Errorf("%s: Validate = %v, want a guard error", name, err)
		}
	}
}
