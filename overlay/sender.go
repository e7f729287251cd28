package overlay

import (
	"net/netip"

	"github.com/weftnet/weft/overlay/udpbatch"
)

// sender sends encapsulated batches and counts the outcome of every datagram:
// forwarded when the kernel took it, dropped by reason when it refused it.
// Packets are counted only here, after the send, so counters never go back.
type sender struct {
	udp  udpSocket
	errs []error
}

func newSender(udp udpSocket, maxPackets int) *sender {
	return &sender{udp: udp, errs: make([]error, maxPackets)}
}

// send transmits pkts[i] followed by tails[i] to dsts[i] and counts them in
// tally. The returned error is the last send error, for logging.
func (s *sender) send(pkts, tails [][]byte, dsts []netip.AddrPort, tally *batchTally) error {
	if len(pkts) == 0 {
		return nil
	}
	errs := s.errs[:len(pkts)]
	err := s.udp.WriteBatch(pkts, tails, dsts, errs)
	for i, e := range errs {
		switch {
		case e == nil:
			tally.packets++
			tally.bytes += uint64(len(pkts[i]) - HeaderLen + len(tails[i]))
		case udpbatch.IsMessageTooBig(e):
			tally.drop(DropTooBig)
		default:
			tally.drop(DropSendError)
		}
	}
	return err
}
