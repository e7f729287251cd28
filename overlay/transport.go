package overlay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

const (
	// socketBufferSize is requested with SO_{RCV,SND}BUFFORCE (we run as root).
	socketBufferSize = 8 << 20
	// udpSegmentMaxDatagrams is the kernel's limit of segments per UDP GSO
	// send and per UDP GRO receive.
	udpSegmentMaxDatagrams = 64
	// maxUDPPayload is the largest UDP payload in one IPv4 datagram.
	maxUDPPayload = 1<<16 - 1 - outerIPv4HeaderLen - udpHeaderLen
)

// transport is the UDP side: one IPv4 socket with DF set, large buffers,
// batched I/O through x/net (recvmmsg/sendmmsg), UDP GSO on send and UDP GRO on
// receive when the kernel accepts them.
type transport struct {
	conn *net.UDPConn
	pc   *ipv4.PacketConn
	gso  atomic.Bool // UDP_SEGMENT usable for sends
	gro  bool        // UDP_GRO enabled on receive
	log  *slog.Logger
}

// openTransport binds 0.0.0.0:port in the current network namespace.
func openTransport(port uint16, log *slog.Logger) (*transport, error) {
	var gro bool
	var optErr error
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		err := c.Control(func(fd uintptr) {
			s := int(fd)
			_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, socketBufferSize)
			_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUF, socketBufferSize)
			if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, socketBufferSize); err != nil {
				log.Warn("SO_RCVBUFFORCE refused, receive buffer capped by net.core.rmem_max", "err", err)
			}
			if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, socketBufferSize); err != nil {
				log.Warn("SO_SNDBUFFORCE refused, send buffer capped by net.core.wmem_max", "err", err)
			}
			// DF on every outer packet: an overlay packet is never fragmented.
			if err := unix.SetsockoptInt(s, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO); err != nil {
				optErr = fmt.Errorf("set IP_MTU_DISCOVER=IP_PMTUDISC_DO: %w", err)
				return
			}
			gro = unix.SetsockoptInt(s, unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil
		})
		if err != nil {
			return err
		}
		return optErr
	}}
	pconn, err := lc.ListenPacket(context.Background(), "udp4", ":"+strconv.Itoa(int(port)))
	if err != nil {
		return nil, fmt.Errorf("listen udp4 port %d: %w", port, err)
	}
	udp := pconn.(*net.UDPConn)
	t := &transport{conn: udp, pc: ipv4.NewPacketConn(udp), gro: gro, log: log}
	t.gso.Store(supportsGSO(udp))
	log.Info("udp transport open", "port", port, "gso", t.gso.Load(), "gro", gro)
	return t, nil
}

// supportsGSO reports whether the kernel knows UDP_SEGMENT on this socket.
func supportsGSO(c *net.UDPConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var ok bool
	_ = rc.Control(func(fd uintptr) {
		_, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
		ok = err == nil
	})
	return ok
}

func (t *transport) close() error { return t.conn.Close() }

// sender batches datagrams into sendmmsg, coalescing consecutive same-size
// datagrams to the same endpoint into one UDP GSO message whose iovecs point
// at the packet buffers (no copy). Owned by the TX loop.
type sender struct {
	t     *transport
	msgs  []ipv4.Message
	iovs  [][][]byte // per message, cap udpSegmentMaxDatagrams
	addrs []net.UDPAddr
	oobs  [][]byte
	first []int // index of the first packet of each message
	count []int // packets in each message
}

// newSender prepares for up to maxPackets datagrams per send.
func newSender(t *transport, maxPackets int) *sender {
	s := &sender{
		t:     t,
		msgs:  make([]ipv4.Message, maxPackets),
		iovs:  make([][][]byte, maxPackets),
		addrs: make([]net.UDPAddr, maxPackets),
		oobs:  make([][]byte, maxPackets),
		first: make([]int, maxPackets),
		count: make([]int, maxPackets),
	}
	for i := range s.msgs {
		s.iovs[i] = make([][]byte, 0, udpSegmentMaxDatagrams)
		s.addrs[i].IP = make(net.IP, 4)
		s.oobs[i] = make([]byte, unix.CmsgSpace(2))
	}
	return s
}

// send transmits pkts[i] to dsts[i]. Datagrams that could not be sent are
// counted in tally; the returned error is the last send error, for logging.
func (s *sender) send(pkts [][]byte, dsts []netip.AddrPort, tally *batchTally) error {
	if len(pkts) == 0 {
		return nil
	}
	gso := s.t.gso.Load()
	nm := s.build(pkts, dsts, gso)
	var lastErr error
	for start := 0; start < nm; {
		k, err := s.t.pc.WriteBatch(s.msgs[start:nm], 0)
		if err == nil {
			start += k
			continue
		}
		if gso && errors.Is(err, unix.EIO) {
			// The device cannot checksum-offload GSO segments: fall back for good.
			s.t.gso.Store(false)
			s.t.log.Warn("UDP GSO refused by the kernel, sending without it", "err", err)
			from := s.first[start]
			return s.send(pkts[from:], dsts[from:], tally)
		}
		reason := DropSendError
		if errors.Is(err, unix.EMSGSIZE) {
			reason = DropTooBig
		}
		for j := 0; j < s.count[start]; j++ {
			tally.drop(reason)
		}
		tally.unsent += uint64(s.count[start])
		lastErr = err
		start++
	}
	return lastErr
}

// build fills s.msgs for pkts and returns the number of messages.
func (s *sender) build(pkts [][]byte, dsts []netip.AddrPort, gso bool) int {
	m := -1
	var segSize, total int
	var ended bool
	for i, p := range pkts {
		if m >= 0 && gso && !ended && dsts[i] == dsts[s.first[m]] && len(p) <= segSize &&
			s.count[m] < udpSegmentMaxDatagrams && total+len(p) <= maxUDPPayload {
			s.msgs[m].Buffers = append(s.msgs[m].Buffers, p)
			s.count[m]++
			total += len(p)
			ended = len(p) < segSize // a shorter segment must be the last one
			continue
		}
		if m >= 0 {
			s.finish(m, segSize)
		}
		m++
		s.first[m], s.count[m] = i, 1
		segSize, total, ended = len(p), len(p), false
		s.msgs[m].Buffers = append(s.iovs[m][:0], p)
		a := &s.addrs[m]
		ip := dsts[i].Addr().As4()
		copy(a.IP, ip[:])
		a.Port = int(dsts[i].Port())
		s.msgs[m].Addr = a
	}
	s.finish(m, segSize)
	return m + 1
}

// finish sets the UDP_SEGMENT control message of message m if it holds more than one datagram.
func (s *sender) finish(m, segSize int) {
	if s.count[m] < 2 {
		s.msgs[m].OOB = s.oobs[m][:0]
		return
	}
	oob := s.oobs[m][:unix.CmsgSpace(2)]
	clear(oob)
	h := (*unix.Cmsghdr)(unsafePointer(&oob[0]))
	h.Level = unix.SOL_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	putNative16(oob[unix.CmsgLen(0):], uint16(segSize))
	s.msgs[m].OOB = oob
}

// receiver batches recvmmsg into the rxPath views and splits UDP GRO
// super-datagrams into one datagram per view. Owned by the RX loop.
type receiver struct {
	t    *transport
	msgs []ipv4.Message
	oobs [][]byte
}

func newReceiver(t *transport) *receiver {
	r := &receiver{t: t, msgs: make([]ipv4.Message, batchSize), oobs: make([][]byte, batchSize)}
	for i := range r.msgs {
		r.msgs[i].Buffers = make([][]byte, 1)
		r.oobs[i] = make([]byte, 64)
	}
	return r
}

// receive reads datagrams into views (each a full-size buffer), one datagram
// per view, and returns how many it read with their sizes and sources.
func (r *receiver) receive(views [][]byte, sizes []int, srcs []netip.AddrPort) (int, error) {
	n := len(views)
	readAt := 0
	if r.t.gro {
		// Each GRO message can split into up to 64 datagrams: read few messages
		// into the tail so that splitting forward never overtakes unread data.
		readAt = n - n/udpSegmentMaxDatagrams
	}
	for i := readAt; i < n; i++ {
		r.msgs[i].Buffers[0] = views[i]
		r.msgs[i].OOB = r.oobs[i]
	}
	got, err := r.t.pc.ReadBatch(r.msgs[readAt:n], 0)
	if err != nil {
		return 0, err
	}
	if !r.t.gro {
		for i := 0; i < got; i++ {
			sizes[i] = r.msgs[i].N
			srcs[i] = addrPortOf(r.msgs[i].Addr)
		}
		return got, nil
	}
	out := 0
	for i := readAt; i < readAt+got; i++ {
		m := &r.msgs[i]
		src := addrPortOf(m.Addr)
		if m.N == 0 {
			// An empty datagram is still one: hand it on so that decap
			// counts it (too_short) rather than losing it uncounted.
			sizes[out], srcs[out] = 0, src
			out++
			continue
		}
		seg := groSegmentSize(m.OOB[:m.NN])
		if seg <= 0 || seg >= m.N {
			seg = m.N
		}
		for start := 0; start < m.N; start += seg {
			if out > i {
				return out, errors.New("splitting UDP GRO datagram overflowed the batch")
			}
			end := min(start+seg, m.N)
			sizes[out] = copy(views[out], views[i][start:end])
			srcs[out] = src
			out++
		}
	}
	return out, nil
}

// addrPortOf converts a received source address without allocating.
func addrPortOf(a net.Addr) netip.AddrPort {
	ua, ok := a.(*net.UDPAddr)
	if !ok {
		return netip.AddrPort{}
	}
	ap := ua.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// groSegmentSize returns the UDP_GRO segment size from a control message
// buffer, or 0 when there is none. It parses in place, without allocating.
func groSegmentSize(oob []byte) int {
	hdr := unix.CmsgLen(0)
	for len(oob) >= hdr {
		h := (*unix.Cmsghdr)(unsafePointer(&oob[0]))
		l := int(h.Len)
		if l < hdr || l > len(oob) {
			return 0
		}
		if h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && l >= hdr+4 {
			return int(getNative32(oob[hdr:]))
		}
		next := unix.CmsgSpace(l - hdr)
		if next > len(oob) {
			return 0
		}
		oob = oob[next:]
	}
	return 0
}
