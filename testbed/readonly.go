package testbed

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// InReadOnlyDir runs f with a directory that is a read-only file system
// (a tmpfs mounted MS_RDONLY, like ProtectSystem=strict makes /etc), in a
// mount namespace private to one OS thread, so nothing outside the test
// sees the mount. The thread is discarded afterwards. Needs root.
func InReadOnlyDir(t testing.TB, f func(dir string)) {
	t.Helper()
	dir := t.TempDir()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		err := func() error {
			if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
				return err
			}
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
				return err
			}
			if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_RDONLY, "size=1m"); err != nil {
				return err
			}
			f(dir)
			return nil
		}()
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatalf("read-only mount (needs root): %v", err)
	}
}
