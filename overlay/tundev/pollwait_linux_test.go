package tundev

import (
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/weftnet/weft/overlay/pollwait"
)

// The reader waits in ppoll (no deadline set): a frame wakes it, and a
// deadline plus Interrupt (what Queue.SetReadDeadline does) unblocks it
// well before ppoll's 1 s timeout.
func TestTUNReaderWaitsInPpoll(t *testing.T) {
	t.Setenv(pollwait.EnvVar, "ppoll")
	f, w := seqpacketPair(t)
	r, err := newReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if r.wait == nil {
		t.Fatalf("%s=ppoll: the reader does not wait in ppoll", pollwait.EnvVar)
	}
	t.Cleanup(func() { _ = r.wait.Close() })
	p := newTestBatch()
	type res struct {
		n   int
		err error
	}
	readAsync := func() <-chan res {
		c := make(chan res, 1)
		go func() { n, err := p.read(r); c <- res{n, err} }()
		return c
	}
	wait := func(c <-chan res) res {
		t.Helper()
		select {
		case v := <-c:
			return v
		case <-time.After(2 * time.Second):
			t.Fatal("read still blocked after 2 s")
			return res{}
		}
	}

	c := readAsync()
	time.Sleep(20 * time.Millisecond)
	small := make([]byte, virtioNetHdrLen+64)
	putUDP(small[virtioNetHdrLen:], 64)
	if _, err := unix.Write(w, small); err != nil {
		t.Fatal(err)
	}
	if v := wait(c); v.err != nil || v.n != 1 || p.sizes[0] != 64 {
		t.Fatalf("read = %d, %v (size %d); want one 64-byte packet", v.n, v.err, p.sizes[0])
	}

	c = readAsync()
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	_ = f.SetReadDeadline(time.Now())
	r.wait.Interrupt()
	if v := wait(c); !errors.Is(v.err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after a past deadline: %d, %v", v.n, v.err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("the deadline took %v to unblock the reader", d)
	}
}
