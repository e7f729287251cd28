package overlay

import (
	"net/netip"
	"testing"
)

// fillRX puts n valid datagrams from the peer into p's views.
func fillRX(p *rxPath, n, size int) {
	for i := 0; i < n; i++ {
		putHeader(p.bufs[i])
		putIPv4(p.bufs[i][HeaderLen:], size, "10.244.2.5", "10.244.1.9", 64)
		p.views[i] = p.bufs[i][:HeaderLen+size]
		p.srcs[i] = testPeerEP
	}
}

func fillTX(p *txPath, n, size int) {
	for i := 0; i < n; i++ {
		putIPv4(p.bufs[i][bufOffset:], size, "10.244.1.5", "10.244.2.9", 64)
		p.sizes[i] = size
	}
}

func TestEncapZeroAllocs(t *testing.T) {
	p, _ := newTestTX(t)
	fillTX(p, batchSize, 1400)
	// One unleased destination per batch exercises the ICMP path too.
	putIPv4(p.bufs[7][bufOffset:], 100, "10.244.1.5", "10.244.99.1", 64)
	p.sizes[7] = 100
	allocs := testing.AllocsPerRun(100, func() {
		if p.encapBatch(batchSize) != batchSize-1 {
			panic("unexpected drops")
		}
	})
	if allocs != 0 {
		t.Fatalf("encapBatch allocates %.1f times per batch", allocs)
	}
}

func TestDecapZeroAllocs(t *testing.T) {
	p := newRXPath(newTestTable(t), testLocal, netip.Prefix{}, DefaultSourcePorts)
	allocs := testing.AllocsPerRun(100, func() {
		fillRX(p, batchSize, 1400) // refresh the TTL decap decrements
		if p.decapBatch(batchSize) != batchSize {
			panic("unexpected drops")
		}
	})
	if allocs != 0 {
		t.Fatalf("decapBatch allocates %.1f times per batch", allocs)
	}
	// Nor the replies of a peer's host services (inner source = its PublicIP).
	allocs = testing.AllocsPerRun(100, func() {
		fillRX(p, batchSize, 100)
		for i := range batchSize {
			copy(p.views[i][HeaderLen+12:], []byte{192, 0, 2, 2})
		}
		if p.decapBatch(batchSize) != batchSize {
			panic("peer host packets dropped")
		}
	})
	if allocs != 0 {
		t.Fatalf("decapBatch of peer host packets allocates %.1f times per batch", allocs)
	}
	// The drop path (unknown sender) must not allocate either.
	allocs = testing.AllocsPerRun(100, func() {
		fillRX(p, 8, 100)
		for i := range 8 {
			p.srcs[i] = testOtherEP // a known peer sending another's subnet
		}
		if p.decapBatch(8) != 0 {
			panic("spoofed packets passed")
		}
	})
	if allocs != 0 {
		t.Fatalf("decapBatch drop path allocates %.1f times per batch", allocs)
	}
}

func TestStatsFlushZeroAllocs(t *testing.T) {
	var c dirCounters
	var tally batchTally
	allocs := testing.AllocsPerRun(100, func() {
		tally.packets, tally.bytes = 3, 300
		tally.drop(DropNoPeer)
		c.flush(&tally, 4)
	})
	if allocs != 0 {
		t.Fatalf("flush allocates %.1f", allocs)
	}
}

func BenchmarkEncap(b *testing.B) {
	p, _ := newTestTX(b)
	fillTX(p, batchSize, 1400)
	b.ReportAllocs()
	b.SetBytes(batchSize * 1400)
	for b.Loop() {
		p.encapBatch(batchSize)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batchSize), "ns/pkt")
}

func BenchmarkDecap(b *testing.B) {
	p := newRXPath(newTestTable(b), testLocal, netip.Prefix{}, DefaultSourcePorts)
	fillRX(p, batchSize, 1400)
	for i := 0; i < batchSize; i++ {
		p.views[i][HeaderLen+8] = 255 // high TTL so repeated decaps keep passing
	}
	b.ReportAllocs()
	b.SetBytes(batchSize * 1400)
	for b.Loop() {
		for i := 0; i < batchSize; i++ {
			p.views[i][HeaderLen+8] = 255
		}
		p.decapBatch(batchSize)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batchSize), "ns/pkt")
}
