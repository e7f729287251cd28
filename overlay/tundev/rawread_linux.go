package tundev

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// readNonblocking reads from a non-blocking descriptor with RawSyscall: the
// read never sleeps, so it skips the runtime's syscall entry and exit, which
// on a quiet process wakes the sysmon thread (a futex and a cross-CPU wakeup
// on the first syscall after every idle spell).
func readNonblocking(fd int, p []byte) (int, error) {
	for {
		n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch e {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return -1, unix.EAGAIN
		default:
			return -1, e
		}
	}
}
