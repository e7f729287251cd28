package wireguard

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"

	"github.com/weftnet/weft/overlay/udpbatch"
)

// bind is weft's conn.Bind for the wireguard-go device: one IPv4 and one
// IPv6 socket (udpbatch.Conn) on the same port. It differs from the
// library's StdNetBind in how it sends: a batch of encrypted packets to one
// endpoint goes out as UDP GSO messages whose iovecs point at the packets
// where they lie (udpbatch.Plan), where StdNetBind copies every packet after
// the first into one buffer. Receive is recvmmsg with UDP GRO, split into
// the device's buffers as StdNetBind does.
//
// Source addresses: the kernel picks them by route (no IP_PKTINFO, no
// sticky source per endpoint), as weft's udp path does. A node's peers are
// configured with its published PublicIP; the route to a peer's PublicIP
// leaves from the underlay address, and a peer that sees another of this
// node's addresses as source roams to it (WireGuard's own rule), which
// still reaches this node.
//
// Send takes no bind-wide lock: the open sockets are an immutable
// bindSockets that Open publishes and Close withdraws through an atomic
// pointer, and each family's sends take only that family's own lock (an
// IPv4 send never waits for an IPv6 one).
type bind struct {
	log *slog.Logger

	mu      sync.Mutex // serialises Open, Close and SetMark (never taken by Send or the ReceiveFuncs)
	sockets atomic.Pointer[bindSockets]
}

// bindSockets are the sockets of one Open, never changed: Close withdraws
// them whole. A family the host does not have is nil.
type bindSockets struct {
	v4, v6 *bindConn
}

// bindConn is one family's socket and the state of its sends and receives.
type bindConn struct {
	c *udpbatch.Conn

	// Send: one batch at a time (the device sends from one goroutine per
	// peer; udpbatch's writer is owned by one caller at a time).
	// A Send that loaded the sockets before a Close may still be here
	// when the socket closes: udpbatch's write then fails with
	// net.ErrClosed (the runtime keeps the descriptor until the write
	// returns, so a closed socket's number is never written to).
	sendMu sync.Mutex
	dsts   []netip.AddrPort
	errs   []error

	// Receive: owned by the one goroutine running the ReceiveFunc.
	views [][]byte
	srcs  []netip.AddrPort
	eps   endpointCache
}

var _ conn.Bind = (*bind)(nil)

// newBind returns a closed bind; the device opens it.
func newBind(log *slog.Logger) *bind {
	if log == nil {
		log = slog.Default()
	}
	return &bind{log: log}
}

// bindBatch is the batch the device hands the bind: conn.IdealBatchSize,
// as StdNetBind's on Linux.
const bindBatch = conn.IdealBatchSize

// openTries bounds the attempts to find a port free in both families when
// Open is asked for any port.
const openTries = 100

// Open binds port (0: a port free for both families, chosen by the kernel)
// on an IPv4 and an IPv6 socket and returns one ReceiveFunc per socket and
// the port. A family the host does not have (EAFNOSUPPORT) is left out.
func (b *bind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sockets.Load() != nil {
		return nil, 0, conn.ErrBindAlreadyOpen
	}
	for try := 0; ; try++ {
		v4, v6, actual, err := b.listenBoth(port)
		if err != nil && port == 0 && errors.Is(err, syscall.EADDRINUSE) && try < openTries {
			continue // the kernel's IPv4 port is taken in IPv6: another one
		}
		if err != nil {
			return nil, 0, err
		}
		var fns []conn.ReceiveFunc
		s := &bindSockets{}
		if v4 != nil {
			s.v4 = newBindConn(v4)
			fns = append(fns, s.v4.receiveIPv4)
		}
		if v6 != nil {
			s.v6 = newBindConn(v6)
			fns = append(fns, s.v6.receiveIPv6)
		}
		b.sockets.Store(s)
		return fns, actual, nil
	}
}

// listenBoth opens the IPv4 socket on port, then the IPv6 one on the port
// the first got.
func (b *bind) listenBoth(port uint16) (v4, v6 *udpbatch.Conn, actual uint16, err error) {
	actual = port
	v4, err = udpbatch.ListenFragmenting(netip.AddrPortFrom(netip.IPv4Unspecified(), port), bindBatch, b.log)
	if err != nil && !errors.Is(err, syscall.EAFNOSUPPORT) {
		return nil, nil, 0, fmt.Errorf("wireguard bind: IPv4 port %d: %w", port, err)
	}
	if v4 != nil {
		actual = v4.LocalAddr().Port()
	}
	v6, err = udpbatch.ListenFragmenting(netip.AddrPortFrom(netip.IPv6Unspecified(), actual), bindBatch, b.log)
	if err != nil && !errors.Is(err, syscall.EAFNOSUPPORT) {
		if v4 != nil {
			_ = v4.Close()
		}
		return nil, nil, 0, fmt.Errorf("wireguard bind: IPv6 port %d: %w", actual, err)
	}
	if v6 != nil {
		actual = v6.LocalAddr().Port()
	}
	if v4 == nil && v6 == nil {
		return nil, nil, 0, fmt.Errorf("wireguard bind: neither IPv4 nor IPv6: %w", syscall.EAFNOSUPPORT)
	}
	return v4, v6, actual, nil
}

func newBindConn(c *udpbatch.Conn) *bindConn {
	return &bindConn{
		c:     c,
		dsts:  make([]netip.AddrPort, bindBatch),
		errs:  make([]error, bindBatch),
		views: make([][]byte, bindBatch),
		srcs:  make([]netip.AddrPort, bindBatch),
		eps:   endpointCache{m: make(map[netip.AddrPort]*endpoint)},
	}
}

// Close closes both sockets: the ReceiveFuncs return net.ErrClosed, and so
// do Sends, from then on and those already under way. Closing a closed
// bind does nothing.
func (b *bind) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.sockets.Swap(nil)
	if s == nil {
		return nil
	}
	var errs []error
	for _, bc := range []*bindConn{s.v4, s.v6} {
		if bc != nil {
			if err := bc.c.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// SetMark sets SO_MARK on both sockets.
func (b *bind) SetMark(mark uint32) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.sockets.Load()
	if s == nil {
		return nil // closed: the device sets the mark again after Open
	}
	for _, bc := range []*bindConn{s.v4, s.v6} {
		if bc == nil {
			continue
		}
		var err error
		if cerr := bc.c.Control(func(fd uintptr) {
			err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark))
		}); cerr != nil {
			return fmt.Errorf("wireguard bind: SO_MARK: %w", cerr)
		}
		if err != nil {
			return fmt.Errorf("wireguard bind: SO_MARK %#x: %w", mark, err)
		}
	}
	return nil
}

// BatchSize is the number of buffers the device hands Send and the ReceiveFuncs.
func (b *bind) BatchSize() int { return bindBatch }

// ParseEndpoint parses "ip:port" (an IPv4-mapped IPv6 address is taken as
// the IPv4 address: it goes out of the IPv4 socket).
func (b *bind) ParseEndpoint(s string) (conn.Endpoint, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil, fmt.Errorf("wireguard bind: endpoint %q: %w", s, err)
	}
	return newEndpoint(ap), nil
}

// Send sends bufs, each one encrypted packet, to ep: UDP GSO messages from
// iovecs of the packets where they lie when the kernel supports it
// (udpbatch falls back to one datagram per packet, for good, when the
// kernel refuses GSO with EIO). It returns the last error: net.ErrClosed
// once the bind is closed, EAFNOSUPPORT for a family it has no socket of.
func (b *bind) Send(bufs [][]byte, ep conn.Endpoint) error {
	e, ok := ep.(*endpoint)
	if !ok {
		return conn.ErrWrongEndpointType
	}
	if len(bufs) > bindBatch {
		return fmt.Errorf("wireguard bind: %d packets in one send, at most %d", len(bufs), bindBatch)
	}
	s := b.sockets.Load()
	if s == nil {
		return net.ErrClosed
	}
	bc := s.v4
	if e.ap.Addr().Is6() {
		bc = s.v6
	}
	if bc == nil {
		return syscall.EAFNOSUPPORT
	}
	bc.sendMu.Lock()
	defer bc.sendMu.Unlock()
	n := len(bufs)
	for i := range n {
		bc.dsts[i] = e.ap
	}
	err := bc.c.WriteBatch(bufs, nil, bc.dsts[:n], bc.errs[:n])
	clear(bc.errs[:n])
	return err
}

// receiveIPv4 and receiveIPv6 are the ReceiveFuncs (named so that the
// device's logs say v4 and v6).
func (bc *bindConn) receiveIPv4(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
	return bc.receive(packets, sizes, eps)
}

func (bc *bindConn) receiveIPv6(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
	return bc.receive(packets, sizes, eps)
}

// receive reads datagrams into packets: with UDP GRO the super-datagrams
// (at most len(packets)/64 of them) are read into the last buffers and
// their segments copied to the front, in order, as StdNetBind does (a
// segment is never copied over one not yet copied: message j lies in
// buffer len-m+j and its segments go to buffers before it or to its own
// start). Without GRO each datagram is read into its own buffer.
func (bc *bindConn) receive(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
	n := min(len(packets), len(sizes), len(eps), len(bc.views))
	if n == 0 {
		return 0, nil
	}
	read := packets[:n]
	if bc.c.GRO() {
		read = packets[n-udpbatch.GROMessages(n) : n]
	}
	k, err := bc.c.ReadBatch(read, bc.views[:n], bc.srcs[:n])
	if err != nil {
		return 0, err
	}
	for i := range k {
		v := bc.views[i]
		if len(v) > 0 && unsafe.SliceData(v) != unsafe.SliceData(packets[i]) {
			copy(packets[i], v)
		}
		sizes[i] = len(v)
		eps[i] = bc.eps.get(bc.srcs[i])
	}
	return k, nil
}

// endpointCacheMax bounds the endpoints a ReceiveFunc keeps: datagrams come
// from the peers' few addresses; an attacker's many forged sources only
// make the cache start over.
const endpointCacheMax = 1024

// endpointCache gives the endpoint of a source address without an
// allocation for a source seen before. Endpoints are immutable (the device
// keeps a received packet's endpoint as its peer's), so one is shared by
// all the packets from its address.
type endpointCache struct {
	last *endpoint
	m    map[netip.AddrPort]*endpoint
}

func (c *endpointCache) get(ap netip.AddrPort) *endpoint {
	if c.last != nil && c.last.ap == ap {
		return c.last
	}
	e, ok := c.m[ap]
	if !ok {
		if len(c.m) >= endpointCacheMax {
			clear(c.m)
		}
		e = newEndpoint(ap)
		c.m[ap] = e
	}
	c.last = e
	return e
}

// endpoint is a peer's address. It has no sticky source address (the
// kernel picks the source by route).
type endpoint struct {
	ap    netip.AddrPort
	bytes []byte // DstToBytes: the address's binary form and the port, as StdNetEndpoint's
}

var _ conn.Endpoint = (*endpoint)(nil)

func newEndpoint(ap netip.AddrPort) *endpoint {
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	b, _ := ap.MarshalBinary() // never fails
	return &endpoint{ap: ap, bytes: b}
}

func (e *endpoint) ClearSrc()           {}
func (e *endpoint) SrcToString() string { return "" }
func (e *endpoint) SrcIP() netip.Addr   { return netip.Addr{} }
func (e *endpoint) DstIP() netip.Addr   { return e.ap.Addr() }
func (e *endpoint) DstToString() string { return e.ap.String() }

// DstToBytes returns the endpoint's bytes for the cookie MACs (shared: the
// device only reads them).
func (e *endpoint) DstToBytes() []byte { return e.bytes }

// CheckPortsFree refuses to go on when a socket holds ListenPort in
// either family (the bind takes both): another weftd, most likely, whose
// lease this one would otherwise rewrite with its own key before its
// bind failed. ListenPort 0 (any free port) passes.
func (b *Backend) CheckPortsFree() error {
	if b.cfg.ListenPort == 0 {
		return nil
	}
	for _, any := range []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()} {
		err := udpbatch.PortFree(netip.AddrPortFrom(any, uint16(b.cfg.ListenPort)))
		if err != nil && !errors.Is(err, syscall.EAFNOSUPPORT) {
			return fmt.Errorf("wireguard: ListenPort %d: %w", b.cfg.ListenPort, err)
		}
	}
	return nil
}
