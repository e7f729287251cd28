package udpbatch

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

// IPv6 sockets (an IPv6 underlay): GSO/GRO round trip, the IPv6 source
// of what arrives, no allocation per batch, and an IPv4 destination
// refused per datagram (the socket is IPv6 only).
func TestIPv6Socket(t *testing.T) {
	a, b := pairOn(t, netip.MustParseAddrPort("[::1]:0"))
	if !a.LocalAddr().Addr().Is6() || a.LocalAddr().Addr().Is4In6() {
		t.Fatalf("local address %v", a.LocalAddr())
	}
	var pkts [][]byte
	for i := range 70 {
		pkts = append(pkts, bytes.Repeat([]byte{byte(i)}, 1200))
	}
	pkts = append(pkts, []byte("tail"))
	dsts := make([]netip.AddrPort, len(pkts))
	for i := range dsts {
		dsts[i] = b.LocalAddr()
	}
	errs := make([]error, len(pkts))
	if err := a.WriteBatch(pkts, nil, dsts, errs); err != nil {
		t.Fatal(err)
	}
	bt := newBatch()
	got := readN(t, b, bt, len(pkts))
	for i := range pkts {
		if !bytes.Equal(got[i], pkts[i]) {
			t.Fatalf("datagram %d differs", i)
		}
	}
	if bt.srcs[0] != a.LocalAddr() {
		t.Fatalf("source %v, want %v", bt.srcs[0], a.LocalAddr())
	}
	// An IPv4 destination on the IPv6-only socket fails alone.
	mixed := []netip.AddrPort{b.LocalAddr(), netip.MustParseAddrPort("127.0.0.1:9"), b.LocalAddr()}
	errs = make([]error, 3)
	_ = a.WriteBatch([][]byte{[]byte("one"), []byte("two"), []byte("three")}, nil, mixed, errs)
	if errs[0] != nil || errs[1] == nil || errs[2] != nil {
		t.Fatalf("per-datagram errors %v", errs)
	}
	if got := readN(t, b, bt, 2); string(got[0]) != "one" || string(got[1]) != "three" {
		t.Fatalf("received %q", got)
	}
	// No allocation per batch.
	small := make([][]byte, 16)
	sd := make([]netip.AddrPort, 16)
	for i := range small {
		small[i], sd[i] = bytes.Repeat([]byte{1}, 1000), b.LocalAddr()
	}
	errs = make([]error, 16)
	_ = b.SetReadDeadline(time.Now().Add(time.Minute))
	allocs := testing.AllocsPerRun(50, func() {
		if err := a.WriteBatch(small, nil, sd, errs); err != nil {
			panic(err)
		}
		for n := 0; n < len(small); {
			k, err := b.ReadBatch(bt.bufs, bt.out, bt.srcs)
			if err != nil {
				panic(err)
			}
			n += k
		}
	})
	if allocs != 0 {
		t.Fatalf("IPv6 WriteBatch+ReadBatch allocate %.1f", allocs)
	}
	// A send-only group and a receive group on an IPv6 port.
	g, err := ListenGroup(netip.MustParseAddrPort("[::1]:0"), 2, testBatch, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range g {
		_ = c.Close()
	}
}
