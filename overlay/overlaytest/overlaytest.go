// Package overlaytest has in-memory fakes of the data path's two ports
// (overlay.TUNDevice, overlay.UDPSocket), as wireguard-go's tun/tuntest and
// conn/bindtest: a Network of UDP sockets that deliver to each other by
// address, and TUN queues a test writes packets into and reads them back
// from. With overlay.NewWith, two nodes forward to each other in one
// process, without root.
package overlaytest

import (
	"encoding/binary"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/weftnet/weft/overlay"
	"github.com/weftnet/weft/overlay/tuntest"
)

// maxQueued bounds what a fake socket holds unread, as a kernel queue
// would (beyond it, datagrams are dropped).
const maxQueued = 4096

// Network is a fake underlay: sockets bound on it by address receive what
// the others send to that address. The zero value is not usable; call
// NewNetwork.
type Network struct {
	mu      sync.Mutex
	sockets map[netip.AddrPort]*UDP
}

// NewNetwork returns an empty underlay.
func NewNetwork() *Network { return &Network{sockets: map[netip.AddrPort]*UDP{}} }

// Listen binds a socket at addr (which must be free).
func (n *Network) Listen(addr netip.AddrPort) *UDP {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, taken := n.sockets[addr]; taken {
		panic("overlaytest: address in use: " + addr.String())
	}
	u := &UDP{net: n, addr: addr}
	u.cond = sync.NewCond(&u.mu)
	n.sockets[addr] = u
	return u
}

// Sockets binds count sockets at addr's port and the ones above it, as
// overlay.New does for its source ports, and returns them as one queue's.
func (n *Network) Sockets(addr netip.AddrPort, count int) []overlay.UDPSocket {
	out := make([]overlay.UDPSocket, 0, count)
	for k := range count {
		out = append(out, n.Listen(netip.AddrPortFrom(addr.Addr(), addr.Port()+uint16(k))))
	}
	return out
}

func (n *Network) deliver(from, to netip.AddrPort, data []byte) {
	n.mu.Lock()
	dst := n.sockets[to]
	n.mu.Unlock()
	if dst != nil {
		dst.receive(from, data)
	}
}

// UDP is a fake overlay.UDPSocket bound on a Network.
type UDP struct {
	net  *Network
	addr netip.AddrPort

	mu      sync.Mutex
	cond    *sync.Cond
	inbox   []datagram
	sent    int
	stopped bool
	closed  bool
}

type datagram struct {
	data []byte
	from netip.AddrPort
}

func (u *UDP) receive(from netip.AddrPort, data []byte) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed || len(u.inbox) >= maxQueued {
		return
	}
	u.inbox = append(u.inbox, datagram{data, from})
	u.cond.Broadcast()
}

// ReadBatch blocks until datagrams arrive (or the deadline is set, or the
// socket closed) and copies them into bufs.
func (u *UDP) ReadBatch(bufs, out [][]byte, srcs []netip.AddrPort) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for len(u.inbox) == 0 {
		if u.closed {
			return 0, os.ErrClosed
		}
		if u.stopped {
			return 0, os.ErrDeadlineExceeded
		}
		u.cond.Wait()
	}
	n := 0
	for n < len(bufs) && n < len(out) && n < len(srcs) && len(u.inbox) > 0 {
		d := u.inbox[0]
		u.inbox = u.inbox[1:]
		out[n] = bufs[n][:copy(bufs[n], d.data)]
		srcs[n] = d.from
		n++
	}
	return n, nil
}

// WriteBatch delivers pkts[i]+tails[i] to the socket bound at dsts[i], if
// any (otherwise it is lost, as on a real underlay).
func (u *UDP) WriteBatch(pkts, tails [][]byte, dsts []netip.AddrPort, errs []error) error {
	u.mu.Lock()
	closed := u.closed
	if !closed {
		u.sent += len(pkts)
	}
	u.mu.Unlock()
	for i, p := range pkts {
		if closed {
			errs[i] = os.ErrClosed
			continue
		}
		errs[i] = nil
		data := slices.Concat(p, tails[i])
		u.net.deliver(u.addr, dsts[i], data)
	}
	if closed {
		return os.ErrClosed
	}
	return nil
}

// SetReadDeadline unblocks ReadBatch at any non-zero t (the loops use it
// only to stop).
func (u *UDP) SetReadDeadline(t time.Time) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.stopped = !t.IsZero()
	u.cond.Broadcast()
	return nil
}

// Close closes the socket and frees its address.
func (u *UDP) Close() error {
	u.mu.Lock()
	u.closed = true
	u.cond.Broadcast()
	u.mu.Unlock()
	u.net.mu.Lock()
	if u.net.sockets[u.addr] == u {
		delete(u.net.sockets, u.addr)
	}
	u.net.mu.Unlock()
	return nil
}

// Sent is how many datagrams the socket sent.
func (u *UDP) Sent() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.sent
}

// TUN is a fake overlay.TUNDevice (package tuntest).
type TUN = tuntest.TUN

// NewTUN returns an empty fake TUN queue that reads packets at
// overlay.BufOffset.
func NewTUN() *TUN { return tuntest.New(overlay.BufOffset) }

// UDPPacket builds an IPv4/UDP packet from src to dst carrying payload
// (header checksum set; the UDP checksum 0, as IPv4 allows), or an
// IPv6/UDP packet (hop limit 64, the UDP checksum IPv6 requires) when the
// addresses are IPv6.
func UDPPacket(src, dst netip.AddrPort, payload []byte) []byte {
	if src.Addr().Is6() {
		return udp6Packet(src, dst, payload)
	}
	n := 20 + 8 + len(payload)
	p := make([]byte, n)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(n))
	p[8] = 64
	p[9] = 17
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(p[12:16], s[:])
	copy(p[16:20], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(p[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(p[10:], ^uint16(sum))
	binary.BigEndian.PutUint16(p[20:], src.Port())
	binary.BigEndian.PutUint16(p[22:], dst.Port())
	binary.BigEndian.PutUint16(p[24:], uint16(8+len(payload)))
	copy(p[28:], payload)
	return p
}

func udp6Packet(src, dst netip.AddrPort, payload []byte) []byte {
	l4 := 8 + len(payload)
	p := make([]byte, 40+l4)
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(l4))
	p[6], p[7] = 17, 64
	s, d := src.Addr().As16(), dst.Addr().As16()
	copy(p[8:24], s[:])
	copy(p[24:40], d[:])
	binary.BigEndian.PutUint16(p[40:], src.Port())
	binary.BigEndian.PutUint16(p[42:], dst.Port())
	binary.BigEndian.PutUint16(p[44:], uint16(l4))
	copy(p[48:], payload)
	sum := uint32(l4) + 17
	for i := 8; i < 40; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(p[i:]))
	}
	u := p[40:]
	for i := 0; i+1 < len(u); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(u[i:]))
	}
	if len(u)%2 == 1 {
		sum += uint32(u[len(u)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	c := ^uint16(sum)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], c)
	return p
}
