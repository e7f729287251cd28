package subnet

import "testing"

// FuzzParseConfig: the network-config parser must never panic, and what it
// accepts must validate and survive a round trip through MarshalJSON.
func FuzzParseConfig(f *testing.F) {
	for _, seed := range []string{
		`{"Network":"10.244.0.0/16","SubnetLen":24,"SubnetMin":"10.244.1.0","SubnetMax":"10.244.254.0","Backend":{"Type":"udp","Port":8285}}`,
		`{"Network":"10.244.0.0/16"}`,
		`{"Network":"10.0.0.0/30"}`,
		`{"Network":"10.244.0.0/16","EnableIPv6":true}`,
		`{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}`,
		`{"network":"10.244.0.0/16","subnetlen":26}`,
		`{"Network":"10.244.0.0/16","Bogus":1}`,
		`{"Network":`,
		`[]`,
		`null`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted config does not validate: %v", err)
		}
		out, err := cfg.MarshalJSON()
		if err != nil {
			t.Fatalf("marshal accepted config: %v", err)
		}
		again, err := ParseConfig(out)
		if err != nil {
			t.Fatalf("round trip of %s: %v", out, err)
		}
		if again.Network != cfg.Network || again.SubnetLen != cfg.SubnetLen || again.SubnetMin != cfg.SubnetMin ||
			again.SubnetMax != cfg.SubnetMax || again.Backend != cfg.Backend {
			t.Fatalf("round trip changed the config: %+v -> %+v", cfg, again)
		}
	})
}
