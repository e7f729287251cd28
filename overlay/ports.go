package overlay

import (
	"net/netip"
	"time"

	"github.com/weftnet/weft/overlay/tundev"
	"github.com/weftnet/weft/overlay/udpbatch"
)

// UDPSocket is what the forwarding loops need from the UDP side; the real
// one is *udpbatch.Conn, tests use an in-memory fake (overlay/overlaytest).
type UDPSocket interface {
	// ReadBatch blocks until datagrams arrive, receives them into bufs and
	// returns them as views out[i] (into bufs) with their sources srcs[i];
	// it returns how many.
	ReadBatch(bufs, out [][]byte, srcs []netip.AddrPort) (int, error)
	// WriteBatch sends pkts[i] followed by tails[i] to dsts[i]; errs[i] is
	// nil for each datagram the kernel took and the error for each it refused.
	WriteBatch(pkts, tails [][]byte, dsts []netip.AddrPort, errs []error) error
	// SetReadDeadline unblocks ReadBatch (os.ErrDeadlineExceeded) at t.
	SetReadDeadline(t time.Time) error
	Close() error
}

var _ UDPSocket = (*udpbatch.Conn)(nil)

// TUNDevice is what the forwarding loops need from the TUN side (one queue);
// the real one is a *tundev.Queue, tests use an in-memory fake
// (overlay/overlaytest). Packets sit at buf[BufOffset:] in every buffer.
type TUNDevice interface {
	// Read blocks until packets arrive and reads them into bufs, their
	// lengths in sizes (partial[i]: TCP checksum holds only the
	// pseudo-header sum; a packet continues in tails[i] when that is not
	// empty); malformed counts frames it dropped.
	Read(bufs [][]byte, sizes []int, partial []bool, tails [][]byte) (n, malformed int, err error)
	// Write writes pkts (bare packets, views into the receive buffers) and
	// returns how many writes failed; the error only when the device is gone.
	Write(pkts [][]byte, partial []bool) (failed int, err error)
	// Inject writes locally generated packets (ICMP errors), concurrently with Write.
	Inject(bufs [][]byte, offset int) (int, error)
	// SetReadDeadline unblocks Read (os.ErrDeadlineExceeded) at t.
	SetReadDeadline(t time.Time) error
	Close() error
}

var _ TUNDevice = (*tundev.Queue)(nil)

// The loops' names for the two ports.
type (
	udpSocket = UDPSocket
	tunDevice = TUNDevice
)

// BufOffset is where a packet starts in every buffer the loops hand to
// TUNDevice.Read (room for the weft header before it).
const BufOffset = bufOffset
