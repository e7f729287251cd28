package overlay

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

// tcpFlow writes a TCP/IPv4 packet from src:sport to dst:dport into b.
func tcpFlow(b []byte, src, dst string, sport, dport uint16) []byte {
	p := putTCPPacket(b, 60, src, dst)
	binary.BigEndian.PutUint16(p[ipv4HeaderLen:], sport)
	binary.BigEndian.PutUint16(p[ipv4HeaderLen+2:], dport)
	return p
}

func TestFlowBucket(t *testing.T) {
	buf := make([]byte, 64)
	a := flowBucket(tcpFlow(buf, "10.244.1.5", "10.244.2.9", 40000, 5201), DefaultSourcePorts)
	for range 3 {
		if got := flowBucket(tcpFlow(buf, "10.244.1.5", "10.244.2.9", 40000, 5201), DefaultSourcePorts); got != a {
			t.Fatalf("the same flow got buckets %d and %d", a, got)
		}
	}
	if got := flowBucket(tcpFlow(buf, "10.244.1.5", "10.244.2.9", 40000, 5201), 1); got != 0 {
		t.Fatalf("one source port: bucket %d", got)
	}
	// Many flows between the same two hosts spread over every port.
	seen := make([]int, DefaultSourcePorts)
	for sport := uint16(40000); sport < 41000; sport++ {
		b := flowBucket(tcpFlow(buf, "10.244.1.5", "10.244.2.9", sport, 5201), DefaultSourcePorts)
		if int(b) >= DefaultSourcePorts {
			t.Fatalf("bucket %d of %d", b, DefaultSourcePorts)
		}
		seen[b]++
	}
	for k, n := range seen {
		if n < 1000/DefaultSourcePorts/2 {
			t.Errorf("bucket %d got %d of 1000 flows: %v", k, n, seen)
		}
	}
	// A fragment's ports are not ports: all fragments of a datagram (the
	// first carries the UDP header, the others payload) share a bucket.
	first := putIPv4(make([]byte, 64), 64, "10.244.1.5", "10.244.2.9", 64)
	binary.BigEndian.PutUint16(first[6:], 0x2000) // MF
	later := putIPv4(make([]byte, 64), 64, "10.244.1.5", "10.244.2.9", 64)
	binary.BigEndian.PutUint16(later[6:], 0x0010) // offset 128 B
	for i := range 64 - ipv4HeaderLen {
		later[ipv4HeaderLen+i] = byte(i * 7)
	}
	if f, l := flowBucket(first, 64), flowBucket(later, 64); f != l {
		t.Fatalf("fragments of one datagram in buckets %d and %d", f, l)
	}
	// Truncated transport header: no ports, no panic.
	short := putIPv4(make([]byte, 22), 22, "10.244.1.5", "10.244.2.9", 64)
	_ = flowBucket(short, DefaultSourcePorts)
}

// TestSenderSpreadsFlowsOverSockets: each datagram leaves from the socket of
// its bucket, every socket's datagrams in the batch's order, and all are
// counted once.
func TestSenderSpreadsFlowsOverSockets(t *testing.T) {
	socks := []*fakeUDP{newFakeUDP(), newFakeUDP(), newFakeUDP()}
	s := newSender([]udpSocket{socks[0], socks[1], socks[2]}, 16)
	var pkts, tails [][]byte
	var dsts []netip.AddrPort
	buckets := []uint8{2, 0, 2, 2, 1, 0, 2}
	for i := range buckets {
		p := make([]byte, HeaderLen+10)
		p[HeaderLen] = byte(i)
		pkts, tails, dsts = append(pkts, p), append(tails, nil), append(dsts, testPeerEP)
	}
	tails[3] = make([]byte, 5)
	var tally batchTally
	if err := s.send(pkts, tails, dsts, buckets, &tally); err != nil {
		t.Fatal(err)
	}
	if tally.packets != uint64(len(pkts)) || tally.bytes != uint64(len(pkts)*10+5) {
		t.Fatalf("counted %d packets %d bytes", tally.packets, tally.bytes)
	}
	want := [][]byte{{1, 5}, {4}, {0, 2, 3, 6}}
	for k, f := range socks {
		var got []byte
		for _, d := range f.sent {
			got = append(got, d.data[HeaderLen])
		}
		if string(got) != string(want[k]) {
			t.Errorf("socket %d sent datagrams %v, want %v", k, got, want[k])
		}
	}
	// One bucket only: one WriteBatch with the batch as it is.
	single := newFakeUDP()
	s = newSender([]udpSocket{newFakeUDP(), single}, 16)
	if err := s.send(pkts, tails, dsts, []uint8{1, 1, 1, 1, 1, 1, 1}, &tally); err != nil || single.sentCount() != len(pkts) {
		t.Fatalf("one bucket: %d sent, err %v", single.sentCount(), err)
	}
}

// nullUDP takes every datagram and keeps nothing (allocation-free).
type nullUDP struct{ n int }

func (u *nullUDP) ReadBatch(bufs, out [][]byte, srcs []netip.AddrPort) (int, error) { return 0, nil }
func (u *nullUDP) WriteBatch(pkts, tails [][]byte, dsts []netip.AddrPort, errs []error) error {
	for i := range pkts {
		errs[i] = nil
	}
	u.n += len(pkts)
	return nil
}
func (u *nullUDP) SetReadDeadline(time.Time) error { return nil }
func (u *nullUDP) Close() error                    { return nil }

func TestSendSpreadZeroAllocs(t *testing.T) {
	socks := make([]udpSocket, DefaultSourcePorts)
	for k := range socks {
		socks[k] = &nullUDP{}
	}
	s := newSender(socks, batchSize)
	p, _ := newTestTX(t)
	for i := range batchSize {
		tcpFlow(p.bufs[i][bufOffset:], "10.244.1.5", "10.244.2.9", uint16(40000+i%13), 5201)
		p.sizes[i] = 60
	}
	var tally batchTally
	allocs := testing.AllocsPerRun(100, func() {
		n := p.encapBatch(batchSize)
		if err := s.send(p.pkts[:n], p.ptails[:n], p.dsts[:n], p.buckets[:n], &tally); err != nil {
			panic(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("encap + send over %d source ports allocates %.1f times per batch", DefaultSourcePorts, allocs)
	}
	used := 0
	for _, u := range socks {
		if u.(*nullUDP).n > 0 {
			used++
		}
	}
	if used < 2 {
		t.Fatalf("13 flows used %d of %d source ports", used, DefaultSourcePorts)
	}
}
