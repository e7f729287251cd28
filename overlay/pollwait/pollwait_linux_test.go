package pollwait

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func pipe(t *testing.T) (r, w int) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Close(p[0]); _ = unix.Close(p[1]) })
	return p[0], p[1]
}

func newWaiter(t *testing.T) *Waiter {
	t.Helper()
	w, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

// waitAsync runs Wait in a goroutine and returns its result channel.
func waitAsync(w *Waiter, fd int) <-chan bool {
	c := make(chan bool, 1)
	go func() { c <- w.Wait(fd) }()
	return c
}

func result(t *testing.T, c <-chan bool, within time.Duration) bool {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(within):
		t.Fatalf("Wait still blocked after %v", within)
		return false
	}
}

func TestWaitReturnsTrueWhenReadable(t *testing.T) {
	w := newWaiter(t)
	r, wr := pipe(t)
	c := waitAsync(w, r)
	time.Sleep(20 * time.Millisecond)
	select {
	case v := <-c:
		t.Fatalf("Wait returned %v on an empty pipe", v)
	default:
	}
	if _, err := unix.Write(wr, []byte{1}); err != nil {
		t.Fatal(err)
	}
	if !result(t, c, 500*time.Millisecond) {
		t.Fatal("Wait returned false for a readable pipe")
	}
}

func TestInterruptUnblocksUntilResume(t *testing.T) {
	w := newWaiter(t)
	r, wr := pipe(t)
	c := waitAsync(w, r)
	time.Sleep(20 * time.Millisecond)
	w.Interrupt()
	if result(t, c, 500*time.Millisecond) {
		t.Fatal("interrupted Wait returned true on an empty pipe")
	}
	// Sticky: a later Wait returns at once, even with data queued.
	if _, err := unix.Write(wr, []byte{1}); err != nil {
		t.Fatal(err)
	}
	if w.Wait(r) {
		t.Fatal("Wait after Interrupt returned true")
	}
	w.Resume()
	if !w.Wait(r) {
		t.Fatal("Wait after Resume returned false for a readable pipe")
	}
}

func TestCloseTwiceAndInterruptAfterClose(t *testing.T) {
	w, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	w.Interrupt() // must not write to a closed (maybe reused) descriptor
	w.Resume()
	if w.Wait(0) {
		t.Fatal("Wait on a closed waiter returned true")
	}
}

func TestWaitAllocatesNothing(t *testing.T) {
	w := newWaiter(t)
	r, wr := pipe(t)
	if _, err := unix.Write(wr, []byte{1}); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { w.Wait(r) }); n != 0 {
		t.Fatalf("Wait allocates %v per call", n)
	}
}
