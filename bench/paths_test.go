package main

import "testing"

func TestParseAddrPair(t *testing.T) {
	a, b, err := parseAddrPair("setting up...\n10.0.0.1 10.0.0.2\n")
	if err != nil || a.String() != "10.0.0.1" || b.String() != "10.0.0.2" {
		t.Errorf("parseAddrPair = %v %v %v", a, b, err)
	}
	for _, bad := range []string{"", "10.0.0.1", "10.0.0.1 x", "1 2 3"} {
		if _, _, err := parseAddrPair(bad); err == nil {
			t.Errorf("parseAddrPair(%q): no error", bad)
		}
	}
}

func TestParseExtra(t *testing.T) {
	name, cmd, err := parseExtra("wg=./setup-wg.sh --mtu=1420")
	if err != nil || name != "wg" || cmd != "./setup-wg.sh --mtu=1420" {
		t.Errorf("parseExtra = %q %q %v", name, cmd, err)
	}
	for _, bad := range []string{"wg", "=cmd", "wg=", "weft=x", "raw=x"} {
		if _, _, err := parseExtra(bad); err == nil {
			t.Errorf("parseExtra(%q): no error", bad)
		}
	}
}
