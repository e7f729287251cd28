package overlay

import (
	"net/netip"
	"syscall"
	"testing"
)

// TestSenderCountsAfterTheSend checks that a datagram is counted as forwarded
// only when the socket took it, and a refused one only as a drop by reason:
// the counters only ever grow.
func TestSenderCountsAfterTheSend(t *testing.T) {
	udp := newFakeUDP()
	udp.failAt[1] = errFakeSend
	udp.failAt[2] = syscall.EMSGSIZE
	s := newSender([]udpSocket{udp}, 8)
	pkts := [][]byte{make([]byte, HeaderLen+100), make([]byte, HeaderLen+200), make([]byte, HeaderLen+300), make([]byte, HeaderLen+400)}
	dsts := []netip.AddrPort{testPeerEP, testPeerEP, testPeerEP, testPeerEP}
	tails := [][]byte{nil, nil, nil, make([]byte, 50)} // the last datagram continues in a tail
	var c dirCounters
	var prev DirStats
	for round := 1; round <= 3; round++ {
		var tally batchTally
		if err := s.send(pkts, tails, dsts, nil, &tally); err == nil {
			t.Fatal("no error reported for the failed datagrams")
		}
		c.flush(&tally, len(pkts))
		st := c.snapshot()
		if st.Packets != uint64(2*round) || st.Bytes != uint64(550*round) {
			t.Fatalf("round %d: packets %d bytes %d, want %d and %d", round, st.Packets, st.Bytes, 2*round, 550*round)
		}
		if st.Drops[DropSendError] != uint64(round) || st.Drops[DropTooBig] != uint64(round) {
			t.Fatalf("round %d: drops %v", round, st.Drops)
		}
		if st.Packets < prev.Packets || st.Bytes < prev.Bytes {
			t.Fatalf("counters went backwards: %+v then %+v", prev, st)
		}
		prev = st
	}
	if udp.sentCount() != 6 {
		t.Fatalf("socket took %d datagrams, want 6", udp.sentCount())
	}
}
