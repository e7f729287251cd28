// Package nodelock keeps a second weftd from running in the same network
// namespace: an exclusive flock on a file that names the holder's pid,
// held for the daemon's lifetime and removed when it stops.
package nodelock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Dir holds weftd's lock files by default.
const Dir = "/run/weft"

// DefaultPath is the lock of the network namespace weftd runs in: one
// weftd per namespace (a TUN name and a UDP port are per namespace), so
// daemons in different namespaces (tests, benchmarks) do not exclude each
// other. In the host namespace of a typical node this is the one lock.
func DefaultPath() (string, error) {
	fi, err := os.Stat("/proc/self/ns/net")
	if err != nil {
		return "", fmt.Errorf("identify the network namespace: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", errors.New("identify the network namespace: no inode")
	}
	return filepath.Join(Dir, "weftd-netns-"+strconv.FormatUint(st.Ino, 10)+".lock"), nil
}

// Lock is an exclusive flock held for the daemon's lifetime; the kernel
// releases it when the process ends, however it ends. Release removes the
// file, so runs do not leave one lock file each behind (a network
// namespace's inode, and so its lock's name, is new for every namespace).
//
// Removing a lock file races with a daemon that opened it just before:
// it would lock the removed file while a third daemon creates and locks a
// new one. So the file is removed only while its lock is held, and
// Acquire, once it holds a lock, checks that the path still names the
// file it locked, and starts again otherwise.
type Lock struct {
	path string
	f    *os.File
}

// lockAttempts bounds Acquire's retries when the file it locked was
// removed or replaced in between (each retry means another daemon came and
// went at that very moment).
const lockAttempts = 100

// Acquire takes the lock at path without waiting. Another weftd holding
// it is an error naming that daemon's pid (recorded in the file).
func Acquire(path string) (*Lock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	for range lockAttempts {
		l, err := tryLock(path)
		if err != nil || l != nil {
			return l, err
		}
	}
	return nil, fmt.Errorf("lock %s: removed or replaced %d times while weftd took it", path, lockAttempts)
}

// tryLock opens and locks path. It returns nil and no error when the file
// it locked is no longer the one at path (removed by the daemon that held
// it, then perhaps created anew): the caller tries again.
func tryLock(path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder := make([]byte, 32) // a pid and a newline
		n, _ := f.ReadAt(holder, 0)
		holder = holder[:n]
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("another weftd (pid %s) runs in this network namespace: it holds %s; refusing to start",
				strings.TrimSpace(string(holder)), path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	same, err := sameFile(f, path)
	if err != nil || !same {
		_ = f.Close()
		return nil, err
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{path: path, f: f}, nil
}

// sameFile reports whether path names the open file f (false when path
// no longer exists).
func sameFile(f *os.File, path string) (bool, error) {
	held, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("lock %s: %w", path, err)
	}
	now, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("lock %s: %w", path, err)
	}
	return os.SameFile(held, now), nil
}

// Release removes the lock file while still holding its lock, then
// unlocks.
func (l *Lock) Release() {
	if same, _ := sameFile(l.f, l.path); same {
		_ = os.Remove(l.path)
	}
	_ = l.f.Close()
}
