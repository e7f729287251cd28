package udpbatch

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// socketBufferSize is requested with SO_{RCV,SND}BUFFORCE (weftd runs as root).
const socketBufferSize = 8 << 20

// oobLen is room for the control messages of one received message (UDP_GRO).
const oobLen = 64

// Conn is one UDP socket, IPv4 or IPv6 (IPv6 only: no mapped IPv4), with DF set, large buffers, UDP GSO on send and
// UDP GRO on receive when the kernel accepts them. Reads and writes go through
// recvmmsg/sendmmsg on preallocated headers, socket addresses and control
// buffers: no allocation per call. One goroutine may read while another
// writes; each side is owned by one goroutine at a time.
type Conn struct {
	conn *net.UDPConn
	rc   syscall.RawConn
	gso  atomic.Bool // UDP_SEGMENT usable for sends
	gro  bool        // UDP_GRO enabled on receive
	v6   bool        // an AF_INET6 socket
	// nameLen is the size of the socket addresses recvmmsg fills in and
	// sendmmsg reads (sockaddr_in or sockaddr_in6).
	nameLen uint32
	log     *slog.Logger

	r reader
	w writer
}

type reader struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // room for either family
	oob   []byte                  // oobLen per message
	segs  []int
	lens  []int
	from  []netip.AddrPort
	// the recvmmsg in progress (fn is a method value made once: no closure per read)
	count, got int
	err        unix.Errno
	fn         func(fd uintptr) bool
}

type writer struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // room for either family
	oob   []byte                  // cmsgSpace2 per message
	msgs  []Message
	// the sendmmsg in progress
	from, count, sent int
	err               unix.Errno
	fn                func(fd uintptr) bool
}

// cmsgSpace2 is the space of a control message carrying a uint16 (UDP_SEGMENT).
var cmsgSpace2 = unix.CmsgSpace(2)

// Listen binds addr (an IPv4 address and port, 0.0.0.0 for any; or an IPv6
// one, [::] for any, on an IPv6-only socket) in the current network
// namespace. maxBatch is the largest number of datagrams
// one ReadBatch or WriteBatch call handles.
func Listen(addr netip.AddrPort, maxBatch int, log *slog.Logger) (*Conn, error) {
	return listen(addr, maxBatch, socketOptions{}, log)
}

// ListenFragmenting is Listen without DF: the socket keeps the kernel's
// default path MTU discovery (IPv4: DF set, but a datagram larger than the
// path MTU the kernel knows is fragmented by this host, not refused; IPv6:
// fragmented by this host). It is for a protocol whose datagrams the
// kernel's own implementation lets fragment (WireGuard), where weft's
// udp path never fragments.
func ListenFragmenting(addr netip.AddrPort, maxBatch int, log *slog.Logger) (*Conn, error) {
	return listen(addr, maxBatch, socketOptions{mayFragment: true}, log)
}

// ListenSendOnly binds addr for sending only: a socket filter drops every
// datagram that arrives on it (nothing is queued, nothing needs reading),
// so it lends its port to WriteBatch as a source port. With n > 1 it opens
// n sockets on the port with SO_REUSEPORT (one per sending worker), after
// checking that no socket holds the port yet (see ListenGroup). The socket
// holds its port: no other process can send from it (a process of the same
// user could join a group opened with n > 1, as with ListenGroup).
func ListenSendOnly(addr netip.AddrPort, n, maxBatch int, log *slog.Logger) ([]*Conn, error) {
	if n < 1 {
		return nil, fmt.Errorf("udpbatch: %d sockets", n)
	}
	if n > 1 {
		if err := portFree(addr); err != nil {
			return nil, err
		}
	}
	conns := make([]*Conn, 0, n)
	for range n {
		c, err := listen(addr, maxBatch, socketOptions{reusePort: n > 1, sendOnly: true}, log)
		if err != nil {
			for _, c := range conns {
				_ = c.Close()
			}
			return nil, fmt.Errorf("send-only socket %d of %d: %w", len(conns)+1, n, err)
		}
		conns = append(conns, c)
	}
	return conns, nil
}

// dropAll is a classic BPF socket filter that accepts nothing (ret 0).
var dropAll = []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}

// ListenGroup opens n sockets bound to the same address with SO_REUSEPORT
// (with port 0 the first one picks the port and the others take it). The
// kernel hands each incoming datagram to one of them by a hash of its
// address 4-tuple, so all datagrams from one source address and port
// arrive, in order, on the same socket. With n == 1 it is Listen (no
// SO_REUSEPORT: a second socket on the port is refused, as before).
func ListenGroup(addr netip.AddrPort, n, maxBatch int, log *slog.Logger) ([]*Conn, error) {
	if n < 1 {
		return nil, fmt.Errorf("udpbatch: %d sockets", n)
	}
	if n == 1 {
		c, err := Listen(addr, maxBatch, log)
		if err != nil {
			return nil, err
		}
		return []*Conn{c}, nil
	}
	if err := portFree(addr); err != nil {
		return nil, err
	}
	conns := make([]*Conn, 0, n)
	for range n {
		c, err := listen(addr, maxBatch, socketOptions{reusePort: true}, log)
		if err != nil {
			for _, c := range conns {
				_ = c.Close()
			}
			return nil, fmt.Errorf("socket %d of %d: %w", len(conns)+1, n, err)
		}
		conns = append(conns, c)
		addr = netip.AddrPortFrom(addr.Addr(), c.LocalAddr().Port())
	}
	return conns, nil
}

// PortFree returns an error when some socket holds addr's port (a bind
// without SO_REUSEPORT fails); it binds nothing for longer than the check.
func PortFree(addr netip.AddrPort) error { return portFree(addr) }

// portFree refuses a port some socket already holds. A group's sockets set
// SO_REUSEPORT, so they would join a socket of the same user that set it
// too (any root process) and the kernel would hand it a share of the
// datagrams; a bind without SO_REUSEPORT fails on any holder, as a single
// socket's would. (A socket that binds after the group is not seen.)
func portFree(addr netip.AddrPort) error {
	if addr.Port() == 0 {
		return nil
	}
	probe, err := net.ListenUDP(udpNetwork(addr), net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return fmt.Errorf("udp port %d: another socket already holds it (SO_REUSEPORT would share its datagrams with it): %w", addr.Port(), err)
	}
	return probe.Close()
}

// socketOptions are how the constructors' sockets differ; the zero value
// is Listen's socket.
type socketOptions struct {
	// reusePort sets SO_REUSEPORT: the socket is one of a group on the
	// port (ListenGroup, ListenSendOnly with n > 1).
	reusePort bool
	// sendOnly attaches a filter that drops every arriving datagram
	// (before the bind: nothing is ever queued) and leaves out the receive
	// buffer and UDP GRO (ListenSendOnly).
	sendOnly bool
	// mayFragment keeps the kernel's default path MTU discovery instead of
	// setting DF on every datagram (ListenFragmenting).
	mayFragment bool
}

func listen(addr netip.AddrPort, maxBatch int, opts socketOptions, log *slog.Logger) (*Conn, error) {
	if maxBatch < 1 {
		return nil, fmt.Errorf("udpbatch: batch size %d", maxBatch)
	}
	if log == nil {
		log = slog.Default()
	}
	var gro bool
	var optErr error
	network := udpNetwork(addr)
	v6 := network == "udp6"
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		err := c.Control(func(fd uintptr) {
			s := int(fd)
			if opts.sendOnly {
				// Before the bind: from then on nothing is queued on it.
				prog := unix.SockFprog{Len: uint16(len(dropAll)), Filter: &dropAll[0]}
				if err := unix.SetsockoptSockFprog(s, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
					optErr = fmt.Errorf("attach the drop-all filter: %w", err)
					return
				}
			}
			if !opts.sendOnly {
				_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, socketBufferSize)
				if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, socketBufferSize); err != nil {
					log.Warn("SO_RCVBUFFORCE refused, receive buffer capped by net.core.rmem_max", "err", err)
				}
			}
			_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUF, socketBufferSize)
			if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, socketBufferSize); err != nil {
				log.Warn("SO_SNDBUFFORCE refused, send buffer capped by net.core.wmem_max", "err", err)
			}
			// DF on every outer packet: an overlay packet is never fragmented
			// (IPv6: never fragmented by this host either).
			switch {
			case opts.mayFragment:
				// The kernel's default path MTU discovery: nothing to set.
			case v6:
				if err := unix.SetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_DO); err != nil {
					optErr = fmt.Errorf("set IPV6_MTU_DISCOVER=IPV6_PMTUDISC_DO: %w", err)
					return
				}
			default:
				if err := unix.SetsockoptInt(s, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO); err != nil {
					optErr = fmt.Errorf("set IP_MTU_DISCOVER=IP_PMTUDISC_DO: %w", err)
					return
				}
			}
			gro = !opts.sendOnly && unix.SetsockoptInt(s, unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil
			if opts.reusePort {
				if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
					optErr = fmt.Errorf("set SO_REUSEPORT: %w", err)
				}
			}
		})
		if err != nil {
			return err
		}
		return optErr
	}}
	pconn, err := lc.ListenPacket(context.Background(), network, addr.String())
	if err != nil {
		return nil, fmt.Errorf("listen %s %v: %w", network, addr, err)
	}
	udp := pconn.(*net.UDPConn)
	rc, err := udp.SyscallConn()
	if err != nil {
		_ = udp.Close()
		return nil, fmt.Errorf("udp raw conn: %w", err)
	}
	c := &Conn{conn: udp, rc: rc, gro: gro, v6: v6, nameLen: unix.SizeofSockaddrInet4, log: log}
	if v6 {
		c.nameLen = unix.SizeofSockaddrInet6
	}
	c.gso.Store(supportsGSO(rc))
	c.r = reader{
		hdrs:  make([]unix.Mmsghdr, maxBatch),
		iovs:  make([]unix.Iovec, maxBatch),
		names: make([]unix.RawSockaddrInet6, maxBatch),
		oob:   make([]byte, maxBatch*oobLen),
		segs:  make([]int, maxBatch),
		lens:  make([]int, maxBatch),
		from:  make([]netip.AddrPort, maxBatch),
	}
	c.r.fn = c.recvmmsg
	c.w = writer{
		hdrs:  make([]unix.Mmsghdr, maxBatch),
		iovs:  make([]unix.Iovec, 2*maxBatch),
		names: make([]unix.RawSockaddrInet6, maxBatch),
		oob:   make([]byte, maxBatch*cmsgSpace2),
		msgs:  make([]Message, maxBatch),
	}
	c.w.fn = c.sendmmsg
	level := slog.LevelInfo
	if opts.sendOnly {
		level = slog.LevelDebug
	}
	log.Log(context.Background(), level, "udp socket open", "addr", udp.LocalAddr(), "gso", c.gso.Load(), "gro", gro, "reuseport", opts.reusePort, "send_only", opts.sendOnly)
	return c, nil
}

// supportsGSO reports whether the kernel knows UDP_SEGMENT on this socket.
func supportsGSO(rc syscall.RawConn) bool {
	var ok bool
	_ = rc.Control(func(fd uintptr) {
		_, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
		ok = err == nil
	})
	return ok
}

// LocalAddr returns the bound address.
func (c *Conn) LocalAddr() netip.AddrPort { return c.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// GSO and GRO report the offloads in use.
func (c *Conn) GSO() bool { return c.gso.Load() }
func (c *Conn) GRO() bool { return c.gro }

// SetReadDeadline sets the deadline of ReadBatch (a past time unblocks it
// with os.ErrDeadlineExceeded; the zero time clears it).
func (c *Conn) SetReadDeadline(t time.Time) error { return c.conn.SetReadDeadline(t) }

// Control runs f with the socket's file descriptor (for a socket option
// this package does not set, e.g. SO_MARK).
func (c *Conn) Control(f func(fd uintptr)) error { return c.rc.Control(f) }

// Close closes the socket; a blocked ReadBatch returns an error that is
// net.ErrClosed.
func (c *Conn) Close() error { return c.conn.Close() }

// ReadBatch blocks until datagrams arrive, receives messages into bufs
// (each a buffer large enough for a GRO super-datagram, 64 KiB) and returns
// the datagrams as views without copying: out[k] is datagram k (a slice of
// one of bufs), srcs[k] its source (of the socket's family). It returns how many. With GRO on it
// receives GROMessages(len(out)) messages at most, so that their datagrams
// always fit out. len(bufs) must not exceed the Listen batch size.
func (c *Conn) ReadBatch(bufs, out [][]byte, srcs []netip.AddrPort) (int, error) {
	r := &c.r
	count := min(len(bufs), len(out))
	if c.gro {
		count = min(len(bufs), GROMessages(len(out)))
	}
	for i := 0; i < count; i++ {
		b := bufs[i]
		r.iovs[i].Base = &b[0]
		r.iovs[i].SetLen(len(b))
		h := &r.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Namelen = c.nameLen
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
		h.Control = &r.oob[i*oobLen]
		h.SetControllen(oobLen)
		h.Flags = 0
	}
	r.count = count
	if err := c.rc.Read(r.fn); err != nil {
		return 0, err
	}
	if r.err != 0 {
		return 0, fmt.Errorf("recvmmsg: %w", r.err)
	}
	for i := 0; i < r.got; i++ {
		m := &r.hdrs[i]
		r.lens[i] = int(m.Len)
		r.from[i] = sockaddrToAddrPort(&r.names[i])
		r.segs[i] = 0
		if c.gro {
			r.segs[i] = groSegmentSize(r.oob[i*oobLen : i*oobLen+int(m.Hdr.Controllen)])
		}
	}
	return SplitGRO(bufs, r.lens, r.segs, r.from, r.got, out, srcs)
}

// recvmmsg runs inside RawConn.Read: false (wait for readability) on EAGAIN.
func (c *Conn) recvmmsg(fd uintptr) bool {
	r := &c.r
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])),
			uintptr(r.count), unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			r.got, r.err = int(n), 0
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			r.got, r.err = 0, e
			return true
		}
	}
}

// WriteBatch sends datagram i, pkts[i] followed by tails[i] (tails may be
// nil; a tail is sent as its own iovec, so a datagram may be a header in one
// buffer and a payload in another), to dsts[i] (of the socket's family), grouped into GSO
// messages when the kernel supports it (Plan; the iovecs point at the
// buffers, nothing is copied). errs[i] is set to nil for a datagram the
// kernel took and to the send error for one it refused. It returns the last
// error, for logging.
func (c *Conn) WriteBatch(pkts, tails [][]byte, dsts []netip.AddrPort, errs []error) error {
	w := &c.w
	gso := c.gso.Load()
	nm := Plan(pkts, tails, dsts, gso, w.msgs)
	iov := 0
	for m := 0; m < nm; m++ {
		msg := w.msgs[m]
		first := iov
		for k := msg.First; k < msg.First+msg.Count; k++ {
			p := pkts[k]
			w.iovs[iov].Base = unsafe.SliceData(p)
			w.iovs[iov].SetLen(len(p))
			iov++
			if tails != nil && len(tails[k]) > 0 {
				w.iovs[iov].Base = unsafe.SliceData(tails[k])
				w.iovs[iov].SetLen(len(tails[k]))
				iov++
			}
		}
		h := &w.hdrs[m].Hdr
		h.Name = (*byte)(unsafe.Pointer(&w.names[m]))
		h.Namelen = c.putSockaddr(&w.names[m], dsts[msg.First])
		h.Iov = &w.iovs[first]
		h.SetIovlen(iov - first)
		h.Flags = 0
		if msg.Count > 1 {
			oob := w.oob[m*cmsgSpace2 : (m+1)*cmsgSpace2]
			putSegmentCmsg(oob, msg.SegSize)
			h.Control = &oob[0]
			h.SetControllen(len(oob))
		} else {
			h.Control = nil
			h.SetControllen(0)
		}
	}
	var lastErr error
	for start := 0; start < nm; {
		w.from, w.count = start, nm-start
		if err := c.rc.Write(w.fn); err != nil {
			// The socket is closed: nothing more goes out.
			for k := w.msgs[start].First; k < len(pkts); k++ {
				errs[k] = err
			}
			return err
		}
		if w.err == 0 {
			for m := start; m < start+w.sent; m++ {
				for k := w.msgs[m].First; k < w.msgs[m].First+w.msgs[m].Count; k++ {
					errs[k] = nil
				}
			}
			start += w.sent
			continue
		}
		msg := w.msgs[start]
		if gso && w.err == unix.EIO {
			// The device cannot checksum-offload GSO segments: fall back for good.
			c.gso.Store(false)
			c.log.Warn("UDP GSO refused by the kernel, sending without it", "err", error(w.err))
			var rest [][]byte
			if tails != nil {
				rest = tails[msg.First:]
			}
			return c.WriteBatch(pkts[msg.First:], rest, dsts[msg.First:], errs[msg.First:])
		}
		for k := msg.First; k < msg.First+msg.Count; k++ {
			errs[k] = w.err
		}
		lastErr = w.err
		start++
	}
	return lastErr
}

// sendmmsg runs inside RawConn.Write: false (wait for writability) on EAGAIN.
func (c *Conn) sendmmsg(fd uintptr) bool {
	w := &c.w
	for {
		n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&w.hdrs[w.from])),
			uintptr(w.count), 0, 0, 0)
		switch e {
		case 0:
			w.sent, w.err = int(n), 0
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			w.sent, w.err = 0, e
			return true
		}
	}
}

// IsMessageTooBig reports whether a WriteBatch error means the datagram
// exceeds the path MTU (DF is set) or the socket's limit.
func IsMessageTooBig(err error) bool { return errors.Is(err, unix.EMSGSIZE) }

// udpNetwork is the network of a socket bound to addr: "udp4" for an IPv4
// address, "udp6" (IPv6 only) for an IPv6 one.
func udpNetwork(addr netip.AddrPort) string {
	if a := addr.Addr(); a.Is6() && !a.Is4In6() {
		return "udp6"
	}
	return "udp4"
}

// putSockaddr writes ap into sa in the socket's family and returns the
// address length: sockaddr_in on an IPv4 socket (in the first bytes of
// sa), sockaddr_in6 on an IPv6 one. A destination of the other family
// gets the family it has, and the kernel refuses it (EAFNOSUPPORT or
// EINVAL: counted as a send error).
func (c *Conn) putSockaddr(sa *unix.RawSockaddrInet6, ap netip.AddrPort) uint32 {
	a := ap.Addr().Unmap()
	if a.Is4() {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		sa4.Family = unix.AF_INET
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:], ap.Port())
		sa4.Addr = a.As4()
		sa4.Zero = [8]uint8{}
		return unix.SizeofSockaddrInet4
	}
	sa.Family = unix.AF_INET6
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], ap.Port())
	sa.Flowinfo = 0
	sa.Addr = a.As16()
	sa.Scope_id = 0
	return unix.SizeofSockaddrInet6
}

// sockaddrToAddrPort reads the source address recvmmsg wrote into sa
// (sockaddr_in or sockaddr_in6, by its family).
func sockaddrToAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	if sa.Family == unix.AF_INET6 {
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port)
	}
	sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:])
	return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
}

// putSegmentCmsg writes a UDP_SEGMENT control message of seg into oob (cmsgSpace2 bytes).
func putSegmentCmsg(oob []byte, seg int) {
	clear(oob)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level = unix.SOL_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(oob[unix.CmsgLen(0):], uint16(seg))
}

// groSegmentSize returns the UDP_GRO segment size from a control message
// buffer, or 0 when there is none. It parses in place, without allocating.
func groSegmentSize(oob []byte) int {
	hdr := unix.CmsgLen(0)
	for len(oob) >= hdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < hdr || l > len(oob) {
			return 0
		}
		if h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && l >= hdr+4 {
			return int(binary.NativeEndian.Uint32(oob[hdr:]))
		}
		next := unix.CmsgSpace(l - hdr)
		if next > len(oob) {
			return 0
		}
		oob = oob[next:]
	}
	return 0
}
