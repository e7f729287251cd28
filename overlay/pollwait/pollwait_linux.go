// Package pollwait blocks a reader's own OS thread in ppoll(2) until its
// descriptor is readable, instead of parking the goroutine in Go's
// netpoller: the kernel then wakes exactly the thread that reads (as a C
// poll loop is woken), without the netpoller thread's handoff to the
// scheduler. A per-waiter eventfd lets Wake unblock it at once.
package pollwait

import (
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// EnvVar selects how the data path's readers wait: "netpoller" makes them
// park in Go's netpoller (the behaviour before this package); anything else,
// or unset, waits in ppoll. Read once when a reader is made.
const EnvVar = "WEFT_READ_WAIT"

// Enabled reports whether readers made now should wait in ppoll.
func Enabled() bool { return os.Getenv(EnvVar) != "netpoller" }

// timeout bounds one wait: an idle reader wakes once a second and hands the
// wait to the netpoller (Wait returns false), so a descriptor closed
// without Wake is still noticed, and an idle weftd costs nothing.
const timeout = 1 // second

// Waiter is one reader's: Wait is called by the reading goroutine
// (inside its RawConn.Read), Interrupt, Resume and Close by whoever sets its
// deadline or shuts it down.
type Waiter struct {
	efd         int
	interrupted atomic.Bool
	closed      atomic.Bool
	fds         [2]unix.PollFd
	ts          unix.Timespec // ppoll writes the time left back: reset per call
}

// New makes a waiter with its eventfd.
func New() (*Waiter, error) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	return &Waiter{efd: efd}, nil
}

// Wait blocks the calling thread (the runtime knows it is in a syscall, so
// its P serves other goroutines meanwhile) until fd is readable (or in
// error: the next read reports it), and returns true then. It returns false
// when interrupted or after the timeout: the caller then waits in the
// netpoller, where deadlines and a closed descriptor are noticed. No
// allocation.
func (w *Waiter) Wait(fd int) bool {
	if w.interrupted.Load() {
		return false
	}
	w.fds[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	w.fds[1] = unix.PollFd{Fd: int32(w.efd), Events: unix.POLLIN}
	for {
		w.ts = unix.Timespec{Sec: timeout}
		n, _, e := syscall.Syscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&w.fds[0])), 2,
			uintptr(unsafe.Pointer(&w.ts)), 0, 0, 0)
		switch {
		case e == unix.EINTR:
			continue
		case e != 0 || n == 0:
			return false
		case w.fds[1].Revents != 0 || w.interrupted.Load():
			return false
		default:
			return w.fds[0].Revents != 0
		}
	}
}

// Interrupt unblocks a Wait in progress and makes every later Wait return
// false at once, until Resume. Call it after setting a read deadline on the
// descriptor and before closing it (closing an *os.File or a net.Conn waits
// for a read in progress to return).
func (w *Waiter) Interrupt() {
	if w.closed.Load() || w.interrupted.Swap(true) {
		return
	}
	one := [8]byte{1}
	_, _ = unix.Write(w.efd, one[:])
}

// Resume undoes Interrupt (when the read deadline is cleared).
func (w *Waiter) Resume() {
	if w.closed.Load() || !w.interrupted.Load() {
		return
	}
	var b [8]byte
	_, _ = unix.Read(w.efd, b[:])
	w.interrupted.Store(false)
}

// Close releases the eventfd; only once the reader can no longer call Wait
// (its descriptor closed). Later calls do nothing.
func (w *Waiter) Close() error {
	w.interrupted.Store(true)
	if w.closed.Swap(true) {
		return nil
	}
	if err := unix.Close(w.efd); err != nil {
		return fmt.Errorf("close eventfd: %w", err)
	}
	return nil
}
