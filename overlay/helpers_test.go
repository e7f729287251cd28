package overlay

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

var (
	testNetwork = netip.MustParsePrefix("10.244.0.0/16")
	testLocal   = netip.MustParsePrefix("10.244.1.0/24")
	testPeerNet = netip.MustParsePrefix("10.244.2.0/24")
	testPeerEP  = netip.MustParseAddrPort("192.0.2.2:8285")
	testOtherEP = netip.MustParseAddrPort("192.0.2.3:8285")
)

// newTestTable returns a /16 table with /24 subnets holding testPeerNet at
// testPeerEP and 10.244.3.0/24 at testOtherEP.
func newTestTable(t testing.TB) *PeerTable {
	t.Helper()
	tab, err := NewPeerTable(testNetwork, 24)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []Peer{
		{Subnet: testPeerNet, Endpoint: testPeerEP},
		{Subnet: netip.MustParsePrefix("10.244.3.0/24"), Endpoint: testOtherEP},
	} {
		if err := tab.Set(p); err != nil {
			t.Fatal(err)
		}
	}
	return tab
}

// putIPv4 writes a valid IPv4/UDP-ish packet of total length n into b.
func putIPv4(b []byte, n int, src, dst string, ttl byte) []byte {
	p := b[:n]
	clear(p)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(n))
	p[8] = ttl
	p[9] = 17
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(p[12:16], s[:])
	copy(p[16:20], d[:])
	binary.BigEndian.PutUint16(p[10:], checksum(p[:20]))
	for i := 20; i < n; i++ {
		p[i] = byte(i)
	}
	return p
}

// putTCPPacket writes a TCP/IPv4 packet of total length n (a 20-byte TCP
// header, ACK) into b.
func putTCPPacket(b []byte, n int, src, dst string) []byte {
	p := putIPv4(b, n, src, dst, 64)
	p[9] = protoTCP
	p[ipv4HeaderLen+12] = 5 << 4
	p[ipv4HeaderLen+13] = 0x10
	p[10], p[11] = 0, 0
	binary.BigEndian.PutUint16(p[10:], checksum(p[:20]))
	return p
}

// datagram builds a weft datagram carrying an IPv4 packet of n bytes.
func datagram(n int, src, dst string, ttl byte) []byte {
	d := make([]byte, HeaderLen+n)
	putHeader(d)
	putIPv4(d[HeaderLen:], n, src, dst, ttl)
	return d
}

// captureWriter stands in for the TUN's write side in unit tests: it keeps a
// copy of the last packet in a preallocated buffer and counts writes.
type captureWriter struct {
	writes int
	last   []byte
	buf    [2048]byte
}

func (w *captureWriter) Inject(bufs [][]byte, offset int) (int, error) {
	for _, b := range bufs {
		w.writes++
		w.last = w.buf[:copy(w.buf[:], b[offset:])]
	}
	return len(bufs), nil
}

func netipMust(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
