package overlay

import (
	"net/netip"

	"github.com/weftnet/weft/overlay/udpbatch"
)

// sender sends encapsulated batches and counts the outcome of every datagram:
// forwarded when the kernel took it, dropped by reason when it refused it.
// Packets are counted only here, after the send, so counters never go back.
//
// socks[k] sends the datagrams whose flow bucket is k (socks[0] is the
// queue's own socket on Port, socks[k] is bound to Port+k, see flow.go): a
// batch whose datagrams fall into several buckets becomes one WriteBatch per
// bucket, each in the batch's order (so every flow keeps its order); a batch
// of one bucket, as one bulk flow's, is one WriteBatch as before.
type sender struct {
	socks []udpSocket
	errs  []error

	// scratch of a batch regrouped by bucket (preallocated, maxPackets each)
	gpkts, gtails        [][]byte
	gdsts                []netip.AddrPort
	counts, starts, next []int
}

func newSender(socks []udpSocket, maxPackets int) *sender {
	n := len(socks)
	return &sender{socks: socks, errs: make([]error, maxPackets),
		gpkts: make([][]byte, maxPackets), gtails: make([][]byte, maxPackets),
		gdsts: make([]netip.AddrPort, maxPackets), counts: make([]int, n), starts: make([]int, n), next: make([]int, n)}
}

// send transmits pkts[i] followed by tails[i] to dsts[i] from the socket of
// flow bucket buckets[i] (nil: all from socks[0]) and counts them in tally.
// The returned error is the last send error, for logging.
func (s *sender) send(pkts, tails [][]byte, dsts []netip.AddrPort, buckets []uint8, tally *batchTally) error {
	if len(pkts) == 0 {
		return nil
	}
	if len(s.socks) == 1 || buckets == nil {
		return s.sendOn(0, pkts, tails, dsts, tally)
	}
	clear(s.counts)
	for _, b := range buckets[:len(pkts)] {
		s.counts[b]++
	}
	used, only := 0, 0
	for k, c := range s.counts {
		if c > 0 {
			used, only = used+1, k
		}
	}
	if used == 1 {
		return s.sendOn(only, pkts, tails, dsts, tally)
	}
	// Counting sort by bucket, stable: each bucket's datagrams in order.
	at := 0
	for k, c := range s.counts {
		s.starts[k], s.next[k] = at, at
		at += c
	}
	for i, b := range buckets[:len(pkts)] {
		j := s.next[b]
		s.next[b]++
		s.gpkts[j], s.gdsts[j] = pkts[i], dsts[i]
		s.gtails[j] = nil
		if tails != nil {
			s.gtails[j] = tails[i]
		}
	}
	var last error
	for k, c := range s.counts {
		if c == 0 {
			continue
		}
		from, to := s.starts[k], s.starts[k]+c
		if err := s.sendOn(k, s.gpkts[from:to], s.gtails[from:to], s.gdsts[from:to], tally); err != nil {
			last = err
		}
	}
	clear(s.gpkts[:len(pkts)]) // keep no views of the batch's buffers
	clear(s.gtails[:len(pkts)])
	return last
}

// sendOn sends a run of datagrams on socks[k] and counts them.
func (s *sender) sendOn(k int, pkts, tails [][]byte, dsts []netip.AddrPort, tally *batchTally) error {
	errs := s.errs[:len(pkts)]
	err := s.socks[k].WriteBatch(pkts, tails, dsts, errs)
	for i, e := range errs {
		switch {
		case e == nil:
			tally.packets++
			tally.bytes += uint64(len(pkts[i]) - HeaderLen)
			if tails != nil {
				tally.bytes += uint64(len(tails[i]))
			}
		case udpbatch.IsMessageTooBig(e):
			tally.drop(DropTooBig)
		default:
			tally.drop(DropSendError)
		}
	}
	return err
}
