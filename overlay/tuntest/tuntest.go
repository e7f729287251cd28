// Package tuntest has an in-memory fake of one TUN queue of the data path
// (overlay.TUNDevice), as wireguard-go's tun/tuntest: a test queues
// packets as if the kernel routed them into the TUN and reads back what
// the data path wrote and injected. It imports nothing of weft, so that
// overlay's own tests use it as well as overlaytest's users.
package tuntest

import (
	"os"
	"slices"
	"sync"
	"time"
)

// maxQueued bounds what the fake holds unread, as a kernel queue would
// (beyond it, packets are dropped).
const maxQueued = 4096

// TUN is a fake overlay.TUNDevice: Send queues a packet as if the kernel
// routed it into the TUN; what the data path writes (decapsulated
// packets) and injects (ICMP errors) is kept for Written and Injected.
type TUN struct {
	offset int // where a packet starts in the buffers Read fills

	mu       sync.Mutex
	cond     *sync.Cond
	inbox    [][]byte
	written  [][]byte
	injected [][]byte
	stopped  bool
	closed   bool
}

// New returns an empty fake TUN queue whose Read puts each packet at
// buf[offset:] (the data path's overlay.BufOffset).
func New(offset int) *TUN {
	t := &TUN{offset: offset}
	t.cond = sync.NewCond(&t.mu)
	return t
}

// Send queues pkt (an IP packet, copied) for the data path to read.
func (t *TUN) Send(pkt []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.inbox) < maxQueued {
		t.inbox = append(t.inbox, slices.Clone(pkt))
		t.cond.Broadcast()
	}
}

// Read implements overlay.TUNDevice: queued packets, at the offset.
func (t *TUN) Read(bufs [][]byte, sizes []int, partial []bool, tails [][]byte) (int, int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(t.inbox) == 0 {
		if t.closed {
			return 0, 0, os.ErrClosed
		}
		if t.stopped {
			return 0, 0, os.ErrDeadlineExceeded
		}
		t.cond.Wait()
	}
	n := 0
	for n < len(bufs) && len(t.inbox) > 0 {
		sizes[n] = copy(bufs[n][t.offset:], t.inbox[0])
		partial[n] = false
		tails[n] = nil
		t.inbox = t.inbox[1:]
		n++
	}
	return n, 0, nil
}

// Write implements overlay.TUNDevice: the packets are kept (copied).
func (t *TUN) Write(pkts [][]byte, partial []bool) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return 0, os.ErrClosed
	}
	for _, p := range pkts {
		t.written = append(t.written, slices.Clone(p))
	}
	t.cond.Broadcast()
	return 0, nil
}

// Inject implements overlay.TUNDevice: the packets are kept (copied).
func (t *TUN) Inject(bufs [][]byte, offset int) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, b := range bufs {
		t.injected = append(t.injected, slices.Clone(b[offset:]))
	}
	t.cond.Broadcast()
	return len(bufs), nil
}

// SetReadDeadline unblocks Read at any non-zero t.
func (t *TUN) SetReadDeadline(d time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = !d.IsZero()
	t.cond.Broadcast()
	return nil
}

// Close ends Read and Write with os.ErrClosed.
func (t *TUN) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	t.cond.Broadcast()
	return nil
}

// Written returns copies of the packets written so far.
func (t *TUN) Written() [][]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.written)
}

// Injected returns copies of the packets injected so far (ICMP errors).
func (t *TUN) Injected() [][]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.injected)
}

// WaitWritten waits up to timeout until at least n packets were written
// and returns them (fewer when the time ran out).
func (t *TUN) WaitWritten(n int, timeout time.Duration) [][]byte {
	return t.wait(func() [][]byte { return t.written }, n, timeout)
}

// WaitInjected is WaitWritten for injected packets.
func (t *TUN) WaitInjected(n int, timeout time.Duration) [][]byte {
	return t.wait(func() [][]byte { return t.injected }, n, timeout)
}

func (t *TUN) wait(list func() [][]byte, n int, timeout time.Duration) [][]byte {
	timer := time.AfterFunc(timeout, func() {
		t.mu.Lock()
		t.cond.Broadcast()
		t.mu.Unlock()
	})
	defer timer.Stop()
	deadline := time.Now().Add(timeout)
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(list()) < n && time.Now().Before(deadline) {
		t.cond.Wait()
	}
	return slices.Clone(list())
}
