package wireguard

import (
	"net/netip"
	"testing"
)

// TestEndpointCacheBoundedUnderForgedSources: datagrams from many more
// forged sources than endpointCacheMax keep the cache bounded, and a known
// source, interleaved with them, always maps to one endpoint of its address
// (the same one while the cache holds it).
func TestEndpointCacheBoundedUnderForgedSources(t *testing.T) {
	c := endpointCache{m: make(map[netip.AddrPort]*endpoint)}
	peer := netip.MustParseAddrPort("192.0.2.7:51820")
	first := c.get(peer)
	if first.DstIP() != peer.Addr() || first.DstToString() != peer.String() {
		t.Fatalf("endpoint of %v: %v", peer, first.DstToString())
	}
	wantBytes := string(first.DstToBytes())
	prev := first
	for i := range 5 * endpointCacheMax {
		forged := netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), uint16(1024+i))
		if e := c.get(forged); e.DstIP() != forged.Addr() || e.DstToString() != forged.String() {
			t.Fatalf("forged %v mapped to %v", forged, e.DstToString())
		}
		if len(c.m) > endpointCacheMax {
			t.Fatalf("after %d forged sources the cache holds %d > %d", i+1, len(c.m), endpointCacheMax)
		}
		if i%97 != 0 {
			continue
		}
		e := c.get(peer)
		if e.DstToString() != peer.String() || string(e.DstToBytes()) != wantBytes {
			t.Fatalf("known source mapped to %v", e.DstToString())
		}
		if again := c.get(peer); again != e {
			t.Fatal("known source mapped to two endpoints in a row")
		}
		if _, held := c.m[peer]; held && e != c.m[peer] {
			t.Fatal("known source's endpoint is not the cached one")
		}
		prev = e
	}
	if prev.DstToString() != peer.String() {
		t.Fatalf("known source mapped to %v", prev.DstToString())
	}
	// A v4-mapped source (a dual-stack socket's) maps to the plain IPv4
	// endpoint, the same one every time.
	mapped := netip.AddrPortFrom(netip.AddrFrom16(peer.Addr().As16()), peer.Port())
	e1, e2 := c.get(mapped), c.get(mapped)
	if e1 != e2 || e1.DstIP() != peer.Addr() || string(e1.DstToBytes()) != wantBytes {
		t.Fatalf("v4-mapped source: %v %v", e1.DstToString(), e2.DstToString())
	}
}
