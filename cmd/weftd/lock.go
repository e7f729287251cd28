package main

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

// lockDir holds weftd's lock files by default.
const lockDir = "/run/weft"

// defaultLockPath is the lock of the network namespace weftd runs in: one
// weftd per namespace (a TUN name and a UDP port are per namespace), so
// daemons in different namespaces (tests, benchmarks) do not exclude each
// other. In the host namespace of a typical node this is the one lock.
func defaultLockPath() (string, error) {
	fi, err := os.Stat("/proc/self/ns/net")
	if err != nil {
		return "", fmt.Errorf("identify the network namespace: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", errors.New("identify the network namespace: no inode")
	}
	return filepath.Join(lockDir, "weftd-netns-"+strconv.FormatUint(st.Ino, 10)+".lock"), nil
}

// nodeLock is an exclusive flock held for the daemon's lifetime; the kernel
// releases it when the process ends, however it ends.
type nodeLock struct{ f *os.File }

// acquireLock takes the lock at path without waiting. Another weftd holding
// it is an error naming that daemon's pid (recorded in the file).
func acquireLock(path string) (*nodeLock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
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
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &nodeLock{f: f}, nil
}

// release unlocks (the file stays: removing it would race with a new daemon).
func (l *nodeLock) release() { _ = l.f.Close() }
