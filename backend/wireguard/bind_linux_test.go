//go:build !unit

package wireguard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.zx2c4.com/wireguard/conn"

	"github.com/weftnet/weft/testbed"
)

// openBinds opens n binds on any port in a fresh namespace whose loopback
// is up (the test's own 127.0.0.1 and ::1).
func openBinds(t *testing.T, n int) ([]*bind, [][]conn.ReceiveFunc, []uint16, string) {
	t.Helper()
	tns := testbed.NSForTest(t, "wbind")
	if out, err := tns.Run(context.Background(), "ip", "link", "set", "lo", "up"); err != nil {
		t.Fatalf("lo up: %v: %s", err, out)
	}
	binds := make([]*bind, n)
	fns := make([][]conn.ReceiveFunc, n)
	ports := make([]uint16, n)
	err := ns.WithNetNSPath(tns.Path(), func(ns.NetNS) error {
		for i := range n {
			binds[i] = newBind(quietLog())
			var err error
			fns[i], ports[i], err = binds[i].Open(0)
			if err != nil {
				return fmt.Errorf("open bind %d: %w", i, err)
			}
			b := binds[i]
			t.Cleanup(func() { _ = b.Close() })
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return binds, fns, ports, tns.Path()
}

// recvState is a device's receive side: its batch of full-size buffers.
type recvState struct {
	bufs  [][]byte
	sizes []int
	eps   []conn.Endpoint
}

func newRecvState() *recvState {
	r := &recvState{bufs: make([][]byte, bindBatch), sizes: make([]int, bindBatch), eps: make([]conn.Endpoint, bindBatch)}
	for i := range r.bufs {
		r.bufs[i] = make([]byte, 1<<16-1)
	}
	return r
}

// recvN calls fn until it has n datagrams (sizes of 0 are skipped, as the
// device does) and returns copies of them and their endpoints.
func recvN(t *testing.T, fn conn.ReceiveFunc, r *recvState, n int) ([][]byte, []conn.Endpoint) {
	t.Helper()
	var got [][]byte
	var eps []conn.Endpoint
	done := make(chan error, 1)
	go func() {
		for len(got) < n {
			k, err := fn(r.bufs, r.sizes, r.eps)
			if err != nil {
				done <- err
				return
			}
			for i := range k {
				if r.sizes[i] == 0 {
					continue
				}
				got = append(got, bytes.Clone(r.bufs[i][:r.sizes[i]]))
				eps = append(eps, r.eps[i])
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("receive after %d of %d datagrams: %v", len(got), n, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("received %d of %d datagrams in 30 s", len(got), n)
	}
	return got, eps
}

// packets makes count packets of size bytes (the last one short when
// short > 0), each filled with its index and tag.
func packets(tag byte, count, size, short int) [][]byte {
	pkts := make([][]byte, count)
	for i := range pkts {
		n := size
		if short > 0 && i == count-1 {
			n = short
		}
		p := make([]byte, n)
		for j := range p {
			p[j] = byte(i) ^ byte(j) ^ tag
		}
		p[0], p[1] = tag, byte(i)
		pkts[i] = p
	}
	return pkts
}

func checkSame(t *testing.T, what string, sent, got [][]byte) {
	t.Helper()
	if len(got) != len(sent) {
		t.Fatalf("%s: got %d datagrams, sent %d", what, len(got), len(sent))
	}
	for i := range sent {
		if !bytes.Equal(sent[i], got[i]) {
			t.Fatalf("%s: datagram %d differs (%d bytes sent, %d got)", what, i, len(sent[i]), len(got[i]))
		}
	}
}

// TestBindBatchesBothWaysBothFamilies sends batches between two binds,
// each way, over IPv4 and IPv6: runs of equal packets (one UDP GSO message
// from an iovec of the packets, received with UDP GRO and split into the
// device's buffers), a short last packet, and packets of rising sizes
// (each its own datagram): all arrive, in order, byte for byte, from the
// sender's port.
func TestBindBatchesBothWaysBothFamilies(t *testing.T) {
	binds, fns, ports, _ := openBinds(t, 2)
	if ports[0] == 0 || ports[1] == 0 || ports[0] == ports[1] {
		t.Fatalf("ports %v", ports)
	}
	if len(fns[0]) != 2 || len(fns[1]) != 2 {
		t.Fatalf("want an IPv4 and an IPv6 receive func, got %d and %d", len(fns[0]), len(fns[1]))
	}
	if s := binds[0].sockets.Load(); s.v4 == nil || !s.v4.c.GSO() || !s.v4.c.GRO() || s.v6 == nil || !s.v6.c.GSO() || !s.v6.c.GRO() {
		t.Fatal("loopback sockets without UDP GSO and GRO: the test would not exercise them")
	}
	rising := make([][]byte, 40)
	for i := range rising {
		rising[i] = packets(byte(0x80+i), 1, 100+30*i, 0)[0]
	}
	for fam, lo := range []string{"127.0.0.1", "::1"} {
		for from := range 2 {
			to := 1 - from
			ep, err := binds[from].ParseEndpoint(netip.AddrPortFrom(netip.MustParseAddr(lo), ports[to]).String())
			if err != nil {
				t.Fatal(err)
			}
			r := newRecvState()
			for _, batch := range []struct {
				name string
				pkts [][]byte
			}{
				{"128 x 1200 B (GSO, two messages)", packets(1, 128, 1200, 0)},
				{"100 x 1452 B and a short last one", packets(2, 100, 1452, 333)},
				{"one datagram", packets(3, 1, 148, 0)},
				{"rising sizes (one datagram each)", rising},
			} {
				what := fmt.Sprintf("%s %d->%d %s", lo, from, to, batch.name)
				if err := binds[from].Send(batch.pkts, ep); err != nil {
					t.Fatalf("%s: send: %v", what, err)
				}
				got, eps := recvN(t, fns[to][fam], r, len(batch.pkts))
				checkSame(t, what, batch.pkts, got)
				want := netip.AddrPortFrom(netip.MustParseAddr(lo), ports[from]).String()
				for i, e := range eps {
					if e.DstToString() != want {
						t.Fatalf("%s: datagram %d from %s, want %s", what, i, e.DstToString(), want)
					}
				}
			}
		}
	}
}

// TestBindCloseUnblocksReceive: the device's Close and BindUpdate wait for
// the receive funcs, which must return net.ErrClosed once the bind closes.
func TestBindCloseUnblocksReceive(t *testing.T) {
	binds, fns, _, _ := openBinds(t, 1)
	errs := make(chan error, len(fns[0]))
	for _, fn := range fns[0] {
		go func() {
			r := newRecvState()
			_, err := fn(r.bufs, r.sizes, r.eps)
			errs <- err
		}()
	}
	time.Sleep(100 * time.Millisecond) // let them block in recvmmsg
	if err := binds[0].Close(); err != nil {
		t.Fatal(err)
	}
	for range fns[0] {
		select {
		case err := <-errs:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("receive after Close: %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a receive func still blocked 5 s after Close")
		}
	}
	for _, addr := range []string{"127.0.0.1:9", "[::1]:9"} {
		ep, _ := binds[0].ParseEndpoint(addr)
		if err := binds[0].Send(packets(1, 1, 100, 0), ep); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Send to %s on a closed bind: %v, want net.ErrClosed", addr, err)
		}
	}
	if err := binds[0].Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestBindSendCloseRace (meant for -race): Sends of both families from
// several goroutines (as the device's per-peer senders), SetMark and
// Close at once. Every Send either goes out or fails with net.ErrClosed
// (none uses a closed socket: the runtime refuses the write), every Send
// after Close fails with net.ErrClosed, and a reopened bind sends on its
// new sockets.
func TestBindSendCloseRace(t *testing.T) {
	binds, fns, ports, tnsPath := openBinds(t, 3)
	sender := binds[0]
	var eps []conn.Endpoint
	for _, lo := range []string{"127.0.0.1", "::1"} {
		ep, err := sender.ParseEndpoint(netip.AddrPortFrom(netip.MustParseAddr(lo), ports[1]).String())
		if err != nil {
			t.Fatal(err)
		}
		eps = append(eps, ep, ep) // two senders per family
	}
	const before = 20 // sends each goroutine makes before the Close
	var started sync.WaitGroup
	started.Add(len(eps))
	results := make(chan error, len(eps))
	for _, ep := range eps {
		go func() {
			pkts := packets(7, 8, 1200, 0)
			n := 0
			for {
				err := sender.Send(pkts, ep)
				if n++; n == before {
					started.Done()
				}
				if err == nil {
					continue
				}
				if n < before {
					started.Done()
				}
				if !errors.Is(err, net.ErrClosed) {
					results <- fmt.Errorf("send %d to %s: %w, want net.ErrClosed", n, ep.DstToString(), err)
					return
				}
				if err := sender.Send(pkts, ep); !errors.Is(err, net.ErrClosed) {
					results <- fmt.Errorf("send to %s after one failed with net.ErrClosed: %v, want net.ErrClosed", ep.DstToString(), err)
					return
				}
				results <- nil
				return
			}
		}()
	}
	stopMark := make(chan struct{})
	markDone := make(chan error, 1)
	go func() {
		for i := uint32(1); ; i++ {
			select {
			case <-stopMark:
				markDone <- nil
				return
			default:
			}
			if err := sender.SetMark(i); err != nil && !errors.Is(err, net.ErrClosed) {
				markDone <- fmt.Errorf("SetMark during sends and Close: %w", err)
				return
			}
		}
	}()
	started.Wait()
	if err := sender.Close(); err != nil {
		t.Fatal(err)
	}
	for range eps {
		select {
		case err := <-results:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a sender still sending 30 s after Close")
		}
	}
	close(stopMark)
	if err := <-markDone; err != nil {
		t.Error(err)
	}
	// Reopened, the bind sends on its new sockets (to a bind that got
	// nothing of the above).
	err := ns.WithNetNSPath(tnsPath, func(ns.NetNS) error {
		_, _, err := sender.Open(0)
		return err
	})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	ep, err := sender.ParseEndpoint(netip.AddrPortFrom(netip.MustParseAddr("::1"), ports[2]).String())
	if err != nil {
		t.Fatal(err)
	}
	pkts := packets(9, 4, 1000, 0)
	if err := sender.Send(pkts, ep); err != nil {
		t.Fatalf("send after reopen: %v", err)
	}
	got, _ := recvN(t, fns[2][1], newRecvState(), len(pkts))
	checkSame(t, "after reopen", pkts, got)
}

// TestBindOpenPorts: a chosen port is the one both families listen on; a
// bind opens once; Close frees the port for the next Open (the device's
// BindUpdate closes and reopens on its port); a port taken in one family
// is refused.
func TestBindOpenPorts(t *testing.T) {
	binds, _, ports, tnsPath := openBinds(t, 2)
	s := binds[0].sockets.Load()
	for _, bc := range []*bindConn{s.v4, s.v6} {
		if got := bc.c.LocalAddr().Port(); got != ports[0] {
			t.Fatalf("socket on port %d, Open returned %d", got, ports[0])
		}
	}
	if _, _, err := binds[0].Open(0); !errors.Is(err, conn.ErrBindAlreadyOpen) {
		t.Fatalf("second Open: %v, want ErrBindAlreadyOpen", err)
	}
	if err := binds[0].Close(); err != nil {
		t.Fatal(err)
	}
	// Reopen on the same port (in the namespace: sockets are made where
	// the thread is).
	err := ns.WithNetNSPath(tnsPath, func(ns.NetNS) error {
		_, got, err := binds[0].Open(ports[0])
		if err != nil {
			return fmt.Errorf("reopen on port %d: %w", ports[0], err)
		}
		if got != ports[0] {
			return fmt.Errorf("reopened on port %d, asked for %d", got, ports[0])
		}
		// bind 1's port is taken in both families: refused.
		if _, _, err := newBind(quietLog()).Open(ports[1]); !errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("open on a taken port: %v, want EADDRINUSE", err)
		}
		// Taken in IPv6 only: refused too, and the IPv4 socket let go.
		l6, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback, Port: 0})
		if err != nil {
			return err
		}
		defer l6.Close()
		p6 := uint16(l6.LocalAddr().(*net.UDPAddr).Port)
		if _, _, err := newBind(quietLog()).Open(p6); !errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("open on a port taken in IPv6: %v, want EADDRINUSE", err)
		}
		l4, err := net.ListenUDP("udp4", &net.UDPAddr{Port: int(p6)})
		if err != nil {
			return fmt.Errorf("the IPv4 port of the refused Open was not let go: %w", err)
		}
		return l4.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := binds[0].SetMark(0x5eed); err != nil {
		t.Fatalf("SetMark: %v", err)
	}
}

// TestBindEndpointBytes: DstToBytes (the cookie MACs' input) is the
// library's for the same address, and ParseEndpoint reads what
// DstToString writes.
func TestBindEndpointBytes(t *testing.T) {
	std := conn.NewStdNetBind()
	b := newBind(quietLog())
	for _, s := range []string{"192.0.2.1:51820", "[2001:db8::1]:51820", "203.0.113.7:1", "[2001:db8:1::ff]:65535"} {
		want, err := std.ParseEndpoint(s)
		if err != nil {
			t.Fatal(err)
		}
		got, err := b.ParseEndpoint(s)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.DstToBytes(), want.DstToBytes()) {
			t.Errorf("%s: DstToBytes %x, library's %x", s, got.DstToBytes(), want.DstToBytes())
		}
		if got.DstToString() != want.DstToString() || got.DstIP() != want.DstIP() {
			t.Errorf("%s: %s %v, library's %s %v", s, got.DstToString(), got.DstIP(), want.DstToString(), want.DstIP())
		}
		if again, err := b.ParseEndpoint(got.DstToString()); err != nil || again.DstToString() != s {
			t.Errorf("%s: parsed back as %v, %v", s, again, err)
		}
	}
	// A mapped IPv4 address goes out of the IPv4 socket.
	m, err := b.ParseEndpoint("[::ffff:192.0.2.1]:51820")
	if err != nil || !m.DstIP().Is4() {
		t.Fatalf("mapped address: %v %v", m, err)
	}
	for _, bad := range []string{"", "192.0.2.1", "192.0.2.1:99999", "[2001:db8::1]", "host:51820"} {
		if _, err := b.ParseEndpoint(bad); err == nil {
			t.Errorf("ParseEndpoint(%q) accepted", bad)
		}
	}
	if err := b.Send(packets(1, 1, 100, 0), mustStdEndpoint(t, std)); !errors.Is(err, conn.ErrWrongEndpointType) {
		t.Fatalf("Send to a foreign endpoint: %v", err)
	}
}

func mustStdEndpoint(t *testing.T, std conn.Bind) conn.Endpoint {
	t.Helper()
	ep, err := std.ParseEndpoint("192.0.2.1:51820")
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// TestBindZeroAllocs: a Send of a batch and the receive of it allocate
// nothing (the sources' endpoints are cached).
func TestBindZeroAllocs(t *testing.T) {
	binds, fns, ports, _ := openBinds(t, 2)
	for fam, lo := range []string{"127.0.0.1", "::1"} {
		ep, err := binds[0].ParseEndpoint(netip.AddrPortFrom(netip.MustParseAddr(lo), ports[1]).String())
		if err != nil {
			t.Fatal(err)
		}
		pkts := packets(5, 64, 1400, 0)
		r := newRecvState()
		fn := fns[1][fam]
		run := func() {
			if err := binds[0].Send(pkts, ep); err != nil {
				t.Fatal(err)
			}
			for got := 0; got < len(pkts); {
				k, err := fn(r.bufs, r.sizes, r.eps)
				if err != nil {
					t.Fatal(err)
				}
				for i := range k {
					if r.sizes[i] > 0 {
						got++
					}
				}
			}
		}
		run() // the first datagram from the source makes its endpoint
		if a := testing.AllocsPerRun(50, run); a != 0 {
			t.Errorf("%s: %.1f allocations per send and receive of %d packets, want 0", lo, a, len(pkts))
		}
	}
}

func quietLog() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
