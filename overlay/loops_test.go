package overlay

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/weftnet/weft/overlay/tuntest"
)

// The forwarding loops and their counters, run against in-memory fakes of
// the TUN and the UDP socket (no root, no kernel).

type fakeRig struct {
	o    *Overlay
	tun  *tuntest.TUN // queue 0
	udp  *fakeUDP     // queue 0
	tuns []*tuntest.TUN
	udps []*fakeUDP
	stop context.CancelFunc
	done chan error
}

func startFakeRig(t *testing.T) *fakeRig { return startFakeRigQueues(t, 1) }

// startFakeRigQueues runs an overlay with n queues, each a fake TUN queue
// and a fake socket.
func startFakeRigQueues(t *testing.T, n int) *fakeRig {
	t.Helper()
	return startFakeRigWith(t, n, nil, nil)
}

// startFakeRigWith is startFakeRigQueues with the config changed by setup
// and each fake TUN queue seen by the data path through wrap (both
// optional).
func startFakeRigWith(t *testing.T, n int, setup func(*Config), wrap func(*tuntest.TUN) tunDevice) *fakeRig {
	t.Helper()
	tab := newTestTable(t)
	cfg := Config{Network: testNetwork, Subnet: testLocal, MTU: 1400, Port: 8285, Queues: n,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if setup != nil {
		setup(&cfg)
	}
	r := &fakeRig{done: make(chan error, 1)}
	var tuns []tunDevice
	var udps [][]udpSocket
	for range n {
		tun, udp := tuntest.New(bufOffset), newFakeUDP()
		r.tuns, r.udps = append(r.tuns, tun), append(r.udps, udp)
		var dev tunDevice = tun
		if wrap != nil {
			dev = wrap(tun)
		}
		tuns, udps = append(tuns, dev), append(udps, []udpSocket{udp})
	}
	r.tun, r.udp = r.tuns[0], r.udps[0]
	r.o = newOverlay(cfg, tab, tuns, udps)
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	go func() { r.done <- r.o.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// waitUntil polls cond with a generous deadline (no timing assertion: the
// deadline only bounds a hung test).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestLoopTUNToUDP(t *testing.T) {
	r := startFakeRig(t)
	pkt := putIPv4(make([]byte, 300), 300, "10.244.1.5", "10.244.2.9", 64)
	const n = 500
	for range n {
		r.tun.Send(pkt)
	}
	r.tun.Send(putIPv4(make([]byte, 100), 100, "10.244.1.5", "10.244.99.1", 64)) // no lease
	r.tun.Send(putIPv4(make([]byte, 100), 100, "10.244.1.5", "192.168.1.1", 64)) // outside
	waitUntil(t, "datagrams sent and the drops counted", func() bool {
		st := r.o.Stats().TX
		return r.udp.sentCount() == n && st.Drops[DropNoPeer] == 1 && st.Drops[DropOutsideNetwork] == 1
	})
	st := r.o.Stats().TX
	if st.Packets != n || st.Bytes != n*300 {
		t.Fatalf("TX packets %d bytes %d, want %d and %d", st.Packets, st.Bytes, n, n*300)
	}
	r.udp.mu.Lock()
	d := r.udp.sent[0]
	r.udp.mu.Unlock()
	if d.peer != testPeerEP || checkHeader(d.data) != notDropped || !bytes.Equal(d.data[HeaderLen:], pkt) {
		t.Fatalf("datagram to %v: % x", d.peer, d.data[:24])
	}
	if injected := len(r.tun.Injected()); injected != 1 {
		t.Fatalf("%d ICMP errors injected, want 1 (net unreachable)", injected)
	}
}

func TestLoopSendFailuresCountedOnce(t *testing.T) {
	r := startFakeRig(t)
	r.udp.mu.Lock()
	r.udp.failAt[0] = errFakeSend // the first datagram of every send fails
	r.udp.mu.Unlock()
	pkt := putIPv4(make([]byte, 200), 200, "10.244.1.5", "10.244.2.9", 64)
	var prev DirStats
	for round := 1; round <= 20; round++ {
		r.tun.Send(pkt)
		r.tun.Send(pkt)
		waitUntil(t, "the round counted", func() bool {
			st := r.o.Stats().TX
			return st.Packets+st.Drops[DropSendError] >= uint64(2*round)
		})
		st := r.o.Stats().TX
		if st.Packets < prev.Packets || st.Drops[DropSendError] < prev.Drops[DropSendError] {
			t.Fatalf("counters went backwards: %+v then %+v", prev, st)
		}
		prev = st
	}
	waitUntil(t, "all 40 packets accounted for", func() bool {
		st := r.o.Stats().TX
		return st.Packets+st.Drops[DropSendError] == 40
	})
	if st := r.o.Stats().TX; int(st.Packets) != r.udp.sentCount() || st.Drops[DropSendError] == 0 {
		t.Fatalf("packets %d (socket took %d), send errors %d", st.Packets, r.udp.sentCount(), st.Drops[DropSendError])
	}
}

func TestLoopUDPToTUN(t *testing.T) {
	r := startFakeRig(t)
	const n = 300
	good := datagram(400, "10.244.2.5", "10.244.1.9", 64)
	for range n {
		r.udp.deliver(good, testPeerEP)
	}
	r.udp.deliver(good, testOtherEP)                                        // known peer, not its subnet
	r.udp.deliver(good, netipMust("203.0.113.9:8285"))                      // nobody
	r.udp.deliver([]byte{1, 2}, testPeerEP)                                 // too short
	r.udp.deliver(datagram(400, "10.244.2.5", "10.244.1.9", 1), testPeerEP) // TTL expires
	waitUntil(t, "packets written and drops counted", func() bool {
		st := r.o.Stats().RX
		w := len(r.tun.Written())
		return w == n && st.Drops[DropSpoofedInnerSource] == 1 && st.Drops[DropUnknownPeer] == 1 &&
			st.Drops[DropTooShort] == 1 && st.Drops[DropTTLExpired] == 1
	})
	st := r.o.Stats().RX
	if st.Packets != n || st.Bytes != n*400 {
		t.Fatalf("RX packets %d bytes %d, want %d and %d", st.Packets, st.Bytes, n, n*400)
	}
	w := r.tun.Written()[0]
	if len(w) != 400 || w[ipv4TTLOffset] != 63 || checksum(w[:20]) != 0 {
		t.Fatalf("written packet: len %d TTL %d", len(w), w[ipv4TTLOffset])
	}
}

func TestFakeRunStopsOnCancel(t *testing.T) {
	r := startFakeRig(t)
	r.stop()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("Run after cancel = %v, want nil", err)
		}
		r.done <- nil // for the cleanup
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestFakeRunFailsWhenDeviceGoes(t *testing.T) {
	r := startFakeRig(t)
	_ = r.tun.Close()
	select {
	case err := <-r.done:
		if !errors.Is(err, ErrLoopStopped) {
			t.Fatalf("Run after the TUN closed = %v, want ErrLoopStopped", err)
		}
		r.done <- nil
	case <-time.After(30 * time.Second):
		t.Fatal("Run hung after the TUN closed under it")
	}
}

// Several queues: each TUN queue's packets leave on its own socket in the
// order they were read, each socket's datagrams are written into its own
// TUN queue in order, the counters add up over the queues, and a queue
// whose TUN goes away ends Run with ErrLoopStopped (the others are
// unblocked, Run returns).
func TestLoopsSeveralQueues(t *testing.T) {
	const queues, n = 3, 400
	r := startFakeRigQueues(t, queues)
	for q := range queues {
		for i := range n {
			pkt := putIPv4(make([]byte, 100), 100, "10.244.1.5", "10.244.2.9", 64)
			pkt[20], pkt[21], pkt[22] = byte(q), byte(i>>8), byte(i) // queue and sequence in the payload
			r.tuns[q].Send(pkt)
			d := datagram(200, "10.244.2.5", "10.244.1.9", 64)
			d[HeaderLen+20], d[HeaderLen+21], d[HeaderLen+22] = byte(q), byte(i>>8), byte(i)
			r.udps[q].deliver(d, testPeerEP)
		}
	}
	waitUntil(t, "every queue's packets sent and written", func() bool {
		st := r.o.Stats()
		return st.TX.Packets == queues*n && st.RX.Packets == queues*n
	})
	st := r.o.Stats()
	if st.TX.Bytes != queues*n*100 || st.RX.Bytes != queues*n*200 {
		t.Fatalf("bytes TX %d RX %d, want %d and %d", st.TX.Bytes, st.RX.Bytes, queues*n*100, queues*n*200)
	}
	for q := range queues {
		r.udps[q].mu.Lock()
		sent := r.udps[q].sent
		r.udps[q].mu.Unlock()
		if len(sent) != n {
			t.Fatalf("socket %d sent %d datagrams, want %d", q, len(sent), n)
		}
		for i, d := range sent {
			inner := d.data[HeaderLen:]
			if int(inner[20]) != q || int(inner[21])<<8|int(inner[22]) != i {
				t.Fatalf("socket %d datagram %d carries queue %d packet %d: another queue's or out of order", q, i, inner[20], int(inner[21])<<8|int(inner[22]))
			}
		}
		written := r.tuns[q].Written()
		if len(written) != n {
			t.Fatalf("TUN queue %d got %d packets, want %d", q, len(written), n)
		}
		for i, p := range written {
			if int(p[20]) != q || int(p[21])<<8|int(p[22]) != i {
				t.Fatalf("TUN queue %d packet %d is socket %d's packet %d: another socket's or out of order", q, i, p[20], int(p[21])<<8|int(p[22]))
			}
		}
	}
	_ = r.tuns[queues-1].Close()
	select {
	case err := <-r.done:
		if !errors.Is(err, ErrLoopStopped) {
			t.Fatalf("Run after TUN queue %d closed = %v, want ErrLoopStopped", queues-1, err)
		}
		r.done <- nil
	case <-time.After(30 * time.Second):
		t.Fatal("Run hung after one TUN queue closed under it")
	}
}
