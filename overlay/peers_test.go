package overlay

import (
	"net/netip"
	"testing"
)

func TestNewPeerTableLimits(t *testing.T) {
	if _, err := NewPeerTable(netip.MustParsePrefix("10.0.0.0/8"), 32); err == nil {
		t.Fatal("2^24 slots accepted")
	}
	if _, err := NewPeerTable(netip.MustParsePrefix("10.0.0.0/8"), 28); err != nil {
		t.Fatalf("2^20 slots refused: %v", err)
	}
	if _, err := NewPeerTable(netip.MustParsePrefix("10.244.0.0/16"), 8); err == nil {
		t.Fatal("subnet shorter than network accepted")
	}
	if _, err := NewPeerTable(netip.MustParsePrefix("fd00::/64"), 80); err == nil {
		t.Fatal("IPv6 network accepted")
	}
}

func TestPeerTableIndexMath(t *testing.T) {
	tab, err := NewPeerTable(testNetwork, 24)
	if err != nil {
		t.Fatal(err)
	}
	if len(tab.slots) != 256 {
		t.Fatalf("slots = %d", len(tab.slots))
	}
	first := Peer{Subnet: netip.MustParsePrefix("10.244.0.0/24"), Endpoint: netip.MustParseAddrPort("192.0.2.10:8285")}
	last := Peer{Subnet: netip.MustParsePrefix("10.244.255.0/24"), Endpoint: netip.MustParseAddrPort("192.0.2.11:8285")}
	for _, p := range []Peer{first, last} {
		if err := tab.Set(p); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		dst  string
		want *Peer
	}{
		{"10.244.0.0", &first},
		{"10.244.0.255", &first},
		{"10.244.255.0", &last},
		{"10.244.255.255", &last},
		{"10.244.1.1", nil},
		{"10.243.255.255", nil},
		{"10.245.0.0", nil},
		{"192.0.2.10", nil},
	}
	for _, c := range cases {
		got := tab.Lookup(netip.MustParseAddr(c.dst))
		if (got == nil) != (c.want == nil) || got != nil && *got != *c.want {
			t.Fatalf("Lookup(%s) = %v, want %v", c.dst, got, c.want)
		}
	}
	if tab.Lookup(netip.MustParseAddr("::1")) != nil {
		t.Fatal("IPv6 lookup found a peer")
	}
	if i, _ := tab.index(addrToUint32(netip.MustParseAddr("10.244.255.7"))); i != 255 {
		t.Fatalf("index of last subnet = %d", i)
	}
}

func TestPeerTableSetErrors(t *testing.T) {
	tab, _ := NewPeerTable(testNetwork, 24)
	ep := netip.MustParseAddrPort("192.0.2.2:8285")
	bad := []Peer{
		{Subnet: netip.MustParsePrefix("10.244.2.1/24"), Endpoint: ep}, // misaligned
		{Subnet: netip.MustParsePrefix("10.245.2.0/24"), Endpoint: ep}, // outside
		{Subnet: netip.MustParsePrefix("10.244.2.0/25"), Endpoint: ep}, // wrong length
		{Subnet: netip.MustParsePrefix("10.244.2.0/24")},               // no endpoint
		{Subnet: netip.MustParsePrefix("10.244.2.0/24"), Endpoint: netip.MustParseAddrPort("0.0.0.0:8285")},
		{Subnet: netip.MustParsePrefix("10.244.2.0/24"), Endpoint: netip.MustParseAddrPort("[fe80::1%eth0]:8285")},
		{Subnet: netip.MustParsePrefix("10.244.2.0/24"), IPv6Subnet: netip.MustParsePrefix("fd10:244:0:2::/64"), Endpoint: ep}, // no IPv6 network
		{Endpoint: ep}, // no subnet
	}
	for _, p := range bad {
		if err := tab.Set(p); err == nil {
			t.Fatalf("Set(%v) accepted", p)
		}
	}
	if len(tab.Peers()) != 0 {
		t.Fatal("a bad peer was installed")
	}
}

func TestPeerTableSetRemoveReset(t *testing.T) {
	tab := newTestTable(t)
	if !tab.knownEndpoint(testPeerEP) || !tab.knownEndpoint(testOtherEP) {
		t.Fatal("endpoints not indexed")
	}
	moved := netip.MustParseAddrPort("192.0.2.9:8285")
	if err := tab.Set(Peer{Subnet: testPeerNet, Endpoint: moved}); err != nil {
		t.Fatal(err)
	}
	if tab.knownEndpoint(testPeerEP) || !tab.knownEndpoint(moved) {
		t.Fatal("endpoint index not updated on replace")
	}
	if got := tab.Lookup(netip.MustParseAddr("10.244.2.77")); got == nil || got.Endpoint != moved {
		t.Fatalf("lookup after replace = %v", got)
	}
	tab.Remove(testPeerNet)
	if tab.Lookup(netip.MustParseAddr("10.244.2.77")) != nil || tab.knownEndpoint(moved) {
		t.Fatal("Remove left the peer")
	}
	tab.Remove(netip.MustParsePrefix("10.244.2.3/24")) // invalid: ignored
	want := []Peer{
		{Subnet: netip.MustParsePrefix("10.244.5.0/24"), Endpoint: netip.MustParseAddrPort("192.0.2.5:8285")},
		{Subnet: netip.MustParsePrefix("10.244.9.0/24"), Endpoint: netip.MustParseAddrPort("192.0.2.6:8285")},
	}
	if err := tab.ResetChecked(append(want, Peer{Subnet: netip.MustParsePrefix("10.1.0.0/24")})); err == nil {
		t.Fatal("ResetChecked accepted a peer outside the network")
	}
	got := tab.Peers()
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("Peers() after Reset = %v", got)
	}
	if tab.knownEndpoint(testOtherEP) || !tab.knownEndpoint(want[1].Endpoint) {
		t.Fatal("endpoint index not rebuilt by Reset")
	}
}

func BenchmarkLookup(b *testing.B) {
	tab := newTestTable(b)
	dst := addrToUint32(netip.MustParseAddr("10.244.2.9"))
	b.ReportAllocs()
	var hits int
	for b.Loop() {
		if tab.LookupIPv4(dst) != nil {
			hits++
		}
	}
	if hits == 0 {
		b.Fatal("no hits")
	}
}

func BenchmarkLookupAddr(b *testing.B) {
	tab := newTestTable(b)
	dst := netip.MustParseAddr("10.244.2.9")
	b.ReportAllocs()
	for b.Loop() {
		if tab.Lookup(dst) == nil {
			b.Fatal("miss")
		}
	}
}
