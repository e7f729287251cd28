package udpbatch

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/weftnet/weft/logtest"
)

const testBatch = 128

func quietLog() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// pair opens two sockets on loopback (this test's own traffic only).
func pair(t *testing.T) (a, b *Conn) {
	t.Helper()
	return pairOn(t, netip.MustParseAddrPort("127.0.0.1:0"))
}

// pairOn opens two sockets bound to lo.
func pairOn(t *testing.T, lo netip.AddrPort) (a, b *Conn) {
	t.Helper()
	a, err := Listen(lo, testBatch, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	b, err = Listen(lo, testBatch, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return a, b
}

type batch struct {
	bufs [][]byte
	out  [][]byte
	srcs []netip.AddrPort
}

func newBatch() *batch {
	b := &batch{bufs: make([][]byte, testBatch), out: make([][]byte, testBatch), srcs: make([]netip.AddrPort, testBatch)}
	for i := range b.bufs {
		b.bufs[i] = make([]byte, 65536)
	}
	return b
}

// readN reads until it has n datagrams (a GRO super-datagram may arrive
// split over several reads), appending copies to got.
func readN(t *testing.T, c *Conn, b *batch, n int) [][]byte {
	t.Helper()
	var got [][]byte
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	for len(got) < n {
		k, err := c.ReadBatch(b.bufs, b.out, b.srcs)
		if err != nil {
			t.Fatalf("ReadBatch after %d of %d datagrams: %v", len(got), n, err)
		}
		for i := 0; i < k; i++ {
			got = append(got, bytes.Clone(b.out[i]))
		}
	}
	return got
}

func TestRoundTripGSOGRO(t *testing.T) {
	a, b := pair(t)
	// 100 datagrams of 1200 bytes (GSO groups of 64 and 36), a short tail, then a second run.
	var pkts [][]byte
	for i := 0; i < 100; i++ {
		p := bytes.Repeat([]byte{byte(i)}, 1200)
		pkts = append(pkts, p)
	}
	pkts = append(pkts, []byte("tail"), bytes.Repeat([]byte{7}, 300))
	dsts := make([]netip.AddrPort, len(pkts))
	for i := range dsts {
		dsts[i] = b.LocalAddr()
	}
	errs := make([]error, len(pkts))
	if err := a.WriteBatch(pkts, nil, dsts, errs); err != nil {
		t.Fatal(err)
	}
	for i, e := range errs {
		if e != nil {
			t.Fatalf("datagram %d: %v", i, e)
		}
	}
	got := readN(t, b, newBatch(), len(pkts))
	if len(got) != len(pkts) {
		t.Fatalf("got %d datagrams, want %d", len(got), len(pkts))
	}
	for i := range pkts {
		if !bytes.Equal(got[i], pkts[i]) {
			t.Fatalf("datagram %d: got %d bytes starting %v, want %d bytes starting %v", i, len(got[i]), got[i][:1], len(pkts[i]), pkts[i][:1])
		}
	}
	t.Logf("gso=%v gro=%v", a.GSO(), b.GRO())
}

func TestSourceAddress(t *testing.T) {
	a, b := pair(t)
	errs := make([]error, 1)
	if err := a.WriteBatch([][]byte{[]byte("x")}, nil, []netip.AddrPort{b.LocalAddr()}, errs); err != nil {
		t.Fatal(err)
	}
	bt := newBatch()
	_ = readN(t, b, bt, 1)
	if bt.srcs[0] != a.LocalAddr() {
		t.Fatalf("source %v, want %v", bt.srcs[0], a.LocalAddr())
	}
}

func TestWriteErrorPerDatagram(t *testing.T) {
	a, b := pair(t)
	// The middle datagram exceeds the largest UDP payload: only it fails.
	pkts := [][]byte{[]byte("one"), make([]byte, MaxPayload+1), []byte("three")}
	dsts := []netip.AddrPort{b.LocalAddr(), b.LocalAddr(), b.LocalAddr()}
	errs := make([]error, 3)
	if err := a.WriteBatch(pkts, nil, dsts, errs); !IsMessageTooBig(err) {
		t.Fatalf("WriteBatch error %v, want EMSGSIZE", err)
	}
	if errs[0] != nil || !IsMessageTooBig(errs[1]) || errs[2] != nil {
		t.Fatalf("per-datagram errors %v", errs)
	}
	got := readN(t, b, newBatch(), 2)
	if string(got[0]) != "one" || string(got[1]) != "three" {
		t.Fatalf("received %q", got)
	}
}

// TestZeroAllocs proves that the real send and receive functions, syscall
// wrappers included, allocate nothing per call, with and without GSO groups.
func TestZeroAllocs(t *testing.T) {
	a, b := pair(t)
	bt := newBatch()
	pkts := make([][]byte, 16)
	dsts := make([]netip.AddrPort, 16)
	errs := make([]error, 16)
	for i := range pkts {
		pkts[i] = bytes.Repeat([]byte{byte(i)}, 1000)
		dsts[i] = b.LocalAddr()
	}
	pkts[15] = pkts[15][:10] // a shorter last segment
	// Half the datagrams are a header plus a payload view (two iovecs).
	tails := make([][]byte, 16)
	for i := 0; i < 8; i++ {
		tails[i] = pkts[i][100:]
		pkts[i] = pkts[i][:100]
	}
	_ = b.SetReadDeadline(time.Now().Add(time.Minute))
	received := 0
	allocs := testing.AllocsPerRun(50, func() {
		if err := a.WriteBatch(pkts, tails, dsts, errs); err != nil {
			panic(err)
		}
		for got := 0; got < len(pkts); {
			k, err := b.ReadBatch(bt.bufs, bt.out, bt.srcs)
			if err != nil {
				panic(err)
			}
			got += k
			received += k
		}
	})
	if allocs != 0 {
		t.Fatalf("WriteBatch+ReadBatch allocate %.1f times per batch of %d", allocs, len(pkts))
	}
	if received == 0 {
		t.Fatal("nothing received")
	}
}

// TestRoundTripTails sends datagrams made of a header in one buffer and a
// payload view in another (as the TX path does for TSO segments), through
// one GSO message, and checks what arrives.
func TestRoundTripTails(t *testing.T) {
	a, b := pair(t)
	payload := make([]byte, 10*1000)
	for i := range payload {
		payload[i] = byte(i / 1000)
	}
	var heads, tails [][]byte
	for i := 0; i < 10; i++ {
		heads = append(heads, []byte{'h', byte(i)})
		tails = append(tails, payload[i*1000:(i+1)*1000])
	}
	tails[9] = tails[9][:500] // a shorter last segment
	dsts := make([]netip.AddrPort, 10)
	for i := range dsts {
		dsts[i] = b.LocalAddr()
	}
	errs := make([]error, 10)
	if err := a.WriteBatch(heads, tails, dsts, errs); err != nil {
		t.Fatal(err)
	}
	got := readN(t, b, newBatch(), 10)
	for i, g := range got {
		want := append([]byte{'h', byte(i)}, tails[i]...)
		if !bytes.Equal(g, want) {
			t.Fatalf("datagram %d: %d bytes starting % x, want %d bytes starting % x", i, len(g), g[:4], len(want), want[:4])
		}
	}
}

// TestListenGroup: the sockets of a group share one port; everything one
// source sends arrives on one of them, in order (the kernel's reuseport
// hash of the address 4-tuple), and a plain Listen on that port is refused.
func TestListenGroup(t *testing.T) {
	group, err := ListenGroup(netip.MustParseAddrPort("127.0.0.1:0"), 3, testBatch, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range group {
		t.Cleanup(func() { _ = c.Close() })
	}
	port := group[0].LocalAddr().Port()
	for i, c := range group {
		if c.LocalAddr().Port() != port {
			t.Fatalf("socket %d on port %d, socket 0 on %d", i, c.LocalAddr().Port(), port)
		}
	}
	if c, err := Listen(group[0].LocalAddr(), testBatch, quietLog()); err == nil {
		_ = c.Close()
		t.Fatal("Listen on a group's port succeeded; want EADDRINUSE")
	}
	src, err := Listen(netip.MustParseAddrPort("127.0.0.1:0"), testBatch, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	const n = 500
	pkts := make([][]byte, 50)
	dsts := make([]netip.AddrPort, len(pkts))
	errs := make([]error, len(pkts))
	for round := 0; round < n/len(pkts); round++ {
		for i := range pkts {
			pkts[i] = []byte{byte(round), byte(i), 'x'}
			dsts[i] = group[0].LocalAddr()
		}
		if err := src.WriteBatch(pkts, nil, dsts, errs); err != nil {
			t.Fatal(err)
		}
	}
	// Find the socket that got the first datagram; it must get all of them, in order.
	var got [][]byte
	var owner *Conn
	for deadline := time.Now().Add(30 * time.Second); owner == nil; {
		if time.Now().After(deadline) {
			t.Fatal("no socket of the group received anything")
		}
		for _, c := range group {
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			bt := newBatch()
			k, err := c.ReadBatch(bt.bufs, bt.out, bt.srcs)
			if err != nil {
				continue
			}
			owner = c
			for i := 0; i < k; i++ {
				got = append(got, bytes.Clone(bt.out[i]))
			}
			break
		}
	}
	got = append(got, readN(t, owner, newBatch(), n-len(got))...)
	for i, g := range got {
		if g[0] != byte(i/50) || g[1] != byte(i%50) {
			t.Fatalf("datagram %d is % x: out of order", i, g)
		}
	}
	for _, c := range group {
		if c == owner {
			continue
		}
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		bt := newBatch()
		if k, err := c.ReadBatch(bt.bufs, bt.out, bt.srcs); err == nil {
			t.Fatalf("another socket of the group got %d datagrams of the same source", k)
		}
	}
}

// A port another socket already holds is refused, even when that socket set
// SO_REUSEPORT (as root's can): the group would otherwise join it silently
// and the kernel would hand it a share of the datagrams, where a single
// socket (n == 1) gets EADDRINUSE.
func TestListenGroupRefusesTakenPort(t *testing.T) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) {
			err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); cerr != nil {
			return cerr
		}
		return err
	}}
	for _, holder := range []string{"127.0.0.1:0", "0.0.0.0:0"} {
		pc, err := lc.ListenPacket(context.Background(), "udp4", holder)
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).AddrPort().Port()
		for _, addr := range []string{"127.0.0.1", "0.0.0.0"} {
			group, err := ListenGroup(netip.AddrPortFrom(netip.MustParseAddr(addr), port), 2, testBatch, quietLog())
			if err == nil {
				for _, c := range group {
					_ = c.Close()
				}
				t.Errorf("ListenGroup on %s:%d, held by a SO_REUSEPORT socket on %s, succeeded; want refused", addr, port, holder)
			} else if !strings.Contains(err.Error(), "already holds") {
				t.Errorf("ListenGroup on a held port: %v; want it to say another socket already holds the port", err)
			}
		}
		_ = pc.Close()
	}
}

// A send-only socket sends from its own port, holds that port against other
// sockets, and queues nothing that arrives on it (its filter drops it).
func TestListenSendOnly(t *testing.T) {
	_, b := pair(t)
	for _, n := range []int{1, 2} {
		so, err := ListenSendOnly(netip.MustParseAddrPort("127.0.0.1:0"), 1, testBatch, quietLog())
		if n == 2 && err == nil {
			port := so[0].LocalAddr().Port()
			_ = so[0].Close()
			so, err = ListenSendOnly(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), 2, testBatch, quietLog())
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(so) != n {
			t.Fatalf("%d sockets, want %d", len(so), n)
		}
		from := so[0].LocalAddr()
		for _, c := range so {
			if c.LocalAddr() != from {
				t.Fatalf("send-only group on %v and %v", from, c.LocalAddr())
			}
			errs := make([]error, 1)
			if err := c.WriteBatch([][]byte{[]byte("x")}, nil, []netip.AddrPort{b.LocalAddr()}, errs); err != nil {
				t.Fatal(err)
			}
			bt := newBatch()
			_ = readN(t, b, bt, 1)
			if bt.srcs[0] != from {
				t.Fatalf("source %v, want the send-only port %v", bt.srcs[0], from)
			}
		}
		if pc, err := net.ListenPacket("udp4", from.String()); err == nil {
			_ = pc.Close()
			t.Fatalf("another socket could bind the send-only port %v", from)
		}
		// Datagrams to it are dropped, not queued.
		errs := make([]error, 3)
		if err := b.WriteBatch([][]byte{[]byte("a"), []byte("b"), []byte("c")}, nil, []netip.AddrPort{from, from, from}, errs); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // loopback delivers within the send; this only adds margin
		for _, c := range so {
			var queued int
			var ioErr error
			if err := c.rc.Control(func(fd uintptr) { queued, ioErr = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }); err != nil || ioErr != nil {
				t.Fatal(err, ioErr)
			}
			if queued != 0 {
				t.Fatalf("a send-only socket queued %d bytes", queued)
			}
			_ = c.Close()
		}
	}
}

// TestListenFragmenting: ListenFragmenting leaves path MTU discovery at the
// kernel's default (IPv4: IP_PMTUDISC_WANT, fragment by this host when
// needed) where Listen sets DF always (IP_PMTUDISC_DO); a closed socket's
// ReadBatch returns net.ErrClosed.
func TestListenFragmenting(t *testing.T) {
	lo := netip.MustParseAddrPort("127.0.0.1:0")
	for _, tc := range []struct {
		name   string
		listen func(netip.AddrPort, int, *slog.Logger) (*Conn, error)
		want   int
	}{
		{"Listen", Listen, unix.IP_PMTUDISC_DO},
		{"ListenFragmenting", ListenFragmenting, unix.IP_PMTUDISC_WANT},
	} {
		c, err := tc.listen(lo, testBatch, quietLog())
		if err != nil {
			t.Fatal(err)
		}
		var got int
		var gerr error
		if err := c.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER) }); err != nil || gerr != nil {
			t.Fatal(err, gerr)
		}
		if got != tc.want {
			t.Errorf("%s: IP_MTU_DISCOVER %d, want %d", tc.name, got, tc.want)
		}
		done := make(chan error, 1)
		go func() {
			b := newBatch()
			_, err := c.ReadBatch(b.bufs, b.out, b.srcs)
			done <- err
		}()
		time.Sleep(50 * time.Millisecond)
		_ = c.Close()
		select {
		case err := <-done:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("%s: ReadBatch after Close: %v, want net.ErrClosed", tc.name, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: ReadBatch still blocked 5 s after Close", tc.name)
		}
	}
}

// refuseGSO makes c's sendmmsg act as on a route that refuses UDP GSO
// (the kernel's udp_send_skb returns EIO for a UDP_SEGMENT message, e.g.
// on a route through an IPsec policy): the messages before the first GSO
// message in line go out through the real syscall, and a GSO message
// first in line fails with EIO (sendmmsg reports an error only when no
// message went out). It returns the count of refused GSO messages.
//
// A fake because this machine cannot make such a route: its kernel (6.18)
// segments GSO in software for a device without checksum offload (no EIO
// since Linux 6.11), and it has no ESP, AH or IPComp for an IPsec route.
func refuseGSO(c *Conn) *int {
	refused := new(int)
	real := c.w.fn
	c.w.fn = func(fd uintptr) bool {
		w := &c.w
		n := 0
		for n < w.count && w.hdrs[w.from+n].Hdr.Control == nil {
			n++
		}
		if n == 0 {
			*refused++
			w.sent, w.err = 0, unix.EIO
			return true
		}
		count := w.count
		w.count = n
		done := real(fd)
		w.count = count
		return done
	}
	return refused
}

// TestWriteBatchFallsBackWhenGSORefused: a batch whose GSO message the
// kernel refuses with EIO is sent again without GSO from that message on
// (the messages before it are not sent twice); every datagram arrives, in
// order, once; the socket stays without GSO (one WARN, no GSO message
// tried again).
func TestWriteBatchFallsBackWhenGSORefused(t *testing.T) {
	var logged logtest.Counter
	a, err := Listen(netip.MustParseAddrPort("127.0.0.1:0"), testBatch, slog.New(&logged))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	_, b := pair(t)
	if !a.GSO() {
		t.Fatal("loopback socket without UDP GSO: the test would not exercise the fallback")
	}
	refused := refuseGSO(a)
	// A lone datagram (its own message, sent before the refusal), 40 of
	// 1200 bytes and a short one (one GSO message), 20 of 1000 (another).
	pkts := [][]byte{bytes.Repeat([]byte{0xee}, 50)}
	for i := range 40 {
		pkts = append(pkts, bytes.Repeat([]byte{byte(i)}, 1200))
	}
	pkts = append(pkts, bytes.Repeat([]byte{0xaa}, 333))
	for i := range 20 {
		pkts = append(pkts, bytes.Repeat([]byte{byte(100 + i)}, 1000))
	}
	send := func(pkts [][]byte) {
		t.Helper()
		dsts := make([]netip.AddrPort, len(pkts))
		errs := make([]error, len(pkts))
		for i := range dsts {
			dsts[i] = b.LocalAddr()
			errs[i] = errors.New("not set")
		}
		if err := a.WriteBatch(pkts, nil, dsts, errs); err != nil {
			t.Fatalf("WriteBatch: %v", err)
		}
		for i, e := range errs {
			if e != nil {
				t.Fatalf("datagram %d: %v", i, e)
			}
		}
		bt := newBatch()
		got := readN(t, b, bt, len(pkts))
		if len(got) != len(pkts) {
			t.Fatalf("got %d datagrams, sent %d", len(got), len(pkts))
		}
		for i := range pkts {
			if !bytes.Equal(got[i], pkts[i]) {
				t.Fatalf("datagram %d: %d bytes starting % x, sent %d bytes starting % x", i, len(got[i]), got[i][:1], len(pkts[i]), pkts[i][:1])
			}
		}
		_ = b.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if k, err := b.ReadBatch(bt.bufs, bt.out, bt.srcs); err == nil {
			t.Fatalf("%d more datagrams than were sent (sent twice)", k)
		}
	}
	send(pkts)
	if *refused != 1 {
		t.Fatalf("%d GSO messages refused, want 1", *refused)
	}
	if a.GSO() {
		t.Fatal("GSO still on after the kernel refused it")
	}
	if n := logged.Containing("UDP GSO refused"); n != 1 {
		t.Fatalf("%d WARNs about the refusal, want 1: %q", n, logged.Lines())
	}
	// The next batch goes out without GSO: nothing refused.
	send(pkts[1:41])
	if *refused != 1 {
		t.Fatalf("GSO tried again after the fallback (%d refusals)", *refused)
	}
}
