package overlay

import (
	"net/netip"
	"time"

	"github.com/weftnet/weft/overlay/udpbatch"
)

// udpSocket is what the forwarding loops need from the UDP side; the real one
// is *udpbatch.Conn, tests use an in-memory fake.
type udpSocket interface {
	// ReadBatch blocks until datagrams arrive and reads one per view, with
	// sizes and sources; it returns how many.
	ReadBatch(views [][]byte, sizes []int, srcs []netip.AddrPort) (int, error)
	// WriteBatch sends pkts[i] to dsts[i]; errs[i] is nil for each datagram
	// the kernel took and the error for each it refused.
	WriteBatch(pkts [][]byte, dsts []netip.AddrPort, errs []error) error
	// SetReadDeadline unblocks ReadBatch (os.ErrDeadlineExceeded) at t.
	SetReadDeadline(t time.Time) error
	Close() error
}

var _ udpSocket = (*udpbatch.Conn)(nil)

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

// send transmits pkts[i] to dsts[i] and counts them in tally. The returned
// error is the last send error, for logging.
func (s *sender) send(pkts [][]byte, dsts []netip.AddrPort, tally *batchTally) error {
	if len(pkts) == 0 {
		return nil
	}
	errs := s.errs[:len(pkts)]
	err := s.udp.WriteBatch(pkts, dsts, errs)
	for i, e := range errs {
		switch {
		case e == nil:
			tally.packets++
			tally.bytes += uint64(len(pkts[i]) - HeaderLen)
		case udpbatch.IsMessageTooBig(e):
			tally.drop(DropTooBig)
		default:
			tally.drop(DropSendError)
		}
	}
	return err
}
