package udpbatch

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/weftnet/weft/overlay/pollwait"
)

// readAsync runs one ReadBatch with no deadline set (the reader waits in
// ppoll, see package pollwait) and returns its outcome.
func readAsync(c *Conn, b *batch) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := c.ReadBatch(b.bufs, b.out, b.srcs)
		done <- err
	}()
	return done
}

func outcome(t *testing.T, done <-chan error, within time.Duration) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(within):
		t.Fatalf("ReadBatch still blocked after %v", within)
		return nil
	}
}

func TestPollWaitReaderReceivesDeadlineAndClose(t *testing.T) {
	t.Setenv(pollwait.EnvVar, "ppoll")
	a, b := pair(t)
	if b.r.wait == nil {
		t.Fatalf("%s=ppoll: the reader does not wait in ppoll", pollwait.EnvVar)
	}
	bt := newBatch()
	_ = b.SetReadDeadline(time.Time{})

	// A datagram wakes the reader waiting in ppoll.
	done := readAsync(b, bt)
	time.Sleep(20 * time.Millisecond)
	errs := make([]error, 1)
	if err := a.WriteBatch([][]byte{[]byte("ping")}, nil, []netip.AddrPort{b.LocalAddr()}, errs); err != nil {
		t.Fatal(err)
	}
	if err := outcome(t, done, 2*time.Second); err != nil {
		t.Fatalf("ReadBatch: %v", err)
	}
	if string(bt.out[0]) != "ping" {
		t.Fatalf("got %q", bt.out[0])
	}

	// A past deadline unblocks it well before ppoll's 1 s timeout.
	done = readAsync(b, bt)
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	_ = b.SetReadDeadline(time.Now())
	if err := outcome(t, done, 2*time.Second); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadBatch after a past deadline: %v", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("the deadline took %v to unblock the reader", d)
	}

	// Cleared, it waits in ppoll again; Close unblocks it promptly.
	_ = b.SetReadDeadline(time.Time{})
	done = readAsync(b, bt)
	time.Sleep(20 * time.Millisecond)
	start = time.Now()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := outcome(t, done, 2*time.Second); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("ReadBatch after Close: %v", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("Close took %v to unblock the reader", d)
	}
}
