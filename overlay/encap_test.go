package overlay

import (
	"encoding/binary"
	"testing"
)

func newTestTX(t testing.TB) (*txPath, *captureWriter) {
	w := &captureWriter{}
	return newTXPath(newTestTable(t), 1400, DefaultSourcePorts, newICMPResponder(w)), w
}

func TestEncapBatch(t *testing.T) {
	p, w := newTestTX(t)
	load := func(i, n int, src, dst string) {
		putIPv4(p.bufs[i][bufOffset:], n, src, dst, 64)
		p.sizes[i] = n
	}
	load(0, 100, "10.244.1.5", "10.244.2.9")  // to peer
	load(1, 100, "10.244.1.5", "10.244.3.9")  // to other peer
	load(2, 100, "10.244.1.5", "10.244.99.1") // unleased: ICMP net unreachable
	load(3, 100, "10.244.1.5", "8.8.8.8")     // outside network
	load(4, 1401, "10.244.1.5", "10.244.2.9") // too big: ICMP frag needed
	p.bufs[5][bufOffset] = 0x60               // IPv6
	p.sizes[5] = 40
	load(6, 1400, "10.244.1.5", "10.244.2.9") // exactly the MTU
	out := p.encapBatch(7)
	if out != 3 {
		t.Fatalf("encapBatch sent %d, want 3", out)
	}
	if p.dsts[0] != testPeerEP || p.dsts[1] != testOtherEP || p.dsts[2] != testPeerEP {
		t.Fatalf("destinations %v", p.dsts[:3])
	}
	if checkHeader(p.pkts[0]) != notDropped || len(p.pkts[0]) != HeaderLen+100 || p.pkts[0][HeaderLen] != 0x45 {
		t.Fatal("datagram is not header + inner packet")
	}
	if &p.pkts[0][HeaderLen] != &p.bufs[0][bufOffset] {
		t.Fatal("datagram is not a view of the TUN buffer")
	}
	if w.writes != 2 {
		t.Fatalf("ICMP writes = %d, want 2", w.writes)
	}
	if w.last[20] != icmpTypeDestUnreach || w.last[21] != icmpCodeFragNeeded || binary.BigEndian.Uint16(w.last[26:]) != 1400 {
		t.Fatalf("last ICMP % x", w.last[:28])
	}
	d := p.tally.drops
	if d[DropNoPeer] != 1 || d[DropOutsideNetwork] != 1 || d[DropTooBig] != 1 || d[DropNotIPv4] != 1 {
		t.Fatalf("drops %v", d)
	}
}

func TestICMPRateLimit(t *testing.T) {
	p, w := newTestTX(t)
	putIPv4(p.bufs[0][bufOffset:], 100, "10.244.1.5", "10.244.99.1", 64)
	p.sizes[0] = 100
	for range icmpBurst * 3 {
		p.encapBatch(1)
	}
	if w.writes != icmpBurst {
		t.Fatalf("ICMP writes = %d, want burst %d", w.writes, icmpBurst)
	}
	if p.tally.drops[DropNoPeer] != icmpBurst*3 {
		t.Fatalf("no_peer drops = %d", p.tally.drops[DropNoPeer])
	}
}
