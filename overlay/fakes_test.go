package overlay

import (
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
)

// fakeUDP is an in-memory udpSocket: WriteBatch records what was sent (and
// fails the datagrams whose index is in failAt with that error); ReadBatch
// hands out queued datagrams, blocking until some arrive or it is stopped.
type fakeUDP struct {
	mu      sync.Mutex
	cond    *sync.Cond
	inbox   []fakeDatagram
	sent    []fakeDatagram
	failAt  map[int]error // index within a WriteBatch call -> error
	stopped bool
	closed  bool
}

type fakeDatagram struct {
	data []byte
	peer netip.AddrPort
}

func newFakeUDP() *fakeUDP {
	f := &fakeUDP{failAt: map[int]error{}}
	f.cond = sync.NewCond(&f.mu)
	return f
}

func (f *fakeUDP) deliver(data []byte, from netip.AddrPort) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inbox = append(f.inbox, fakeDatagram{append([]byte(nil), data...), from})
	f.cond.Broadcast()
}

func (f *fakeUDP) ReadBatch(bufs, out [][]byte, srcs []netip.AddrPort) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.inbox) == 0 {
		if f.closed {
			return 0, os.ErrClosed
		}
		if f.stopped {
			return 0, os.ErrDeadlineExceeded
		}
		f.cond.Wait()
	}
	n := 0
	for n < len(bufs) && n < len(out) && len(f.inbox) > 0 {
		d := f.inbox[0]
		f.inbox = f.inbox[1:]
		out[n] = bufs[n][:copy(bufs[n], d.data)]
		srcs[n] = d.peer
		n++
	}
	return n, nil
}

func (f *fakeUDP) WriteBatch(pkts, tails [][]byte, dsts []netip.AddrPort, errs []error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var last error
	for i, p := range pkts {
		if e, ok := f.failAt[i]; ok {
			errs[i], last = e, e
			continue
		}
		errs[i] = nil
		f.sent = append(f.sent, fakeDatagram{append(append([]byte(nil), p...), tails[i]...), dsts[i]})
	}
	f.cond.Broadcast()
	return last
}

func (f *fakeUDP) SetReadDeadline(t time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = !t.IsZero()
	f.cond.Broadcast()
	return nil
}

func (f *fakeUDP) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	f.cond.Broadcast()
	return nil
}

func (f *fakeUDP) sentCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sent)
}

var errFakeSend = syscall.ENOBUFS
