//go:build !unit

package main

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// inReadOnlyDir runs f with a directory that is a read-only file system
// (a tmpfs mounted MS_RDONLY, like ProtectSystem=strict makes /etc), in a
// mount namespace private to one OS thread, so nothing outside the test
// sees the mount. The thread is discarded afterwards.
func inReadOnlyDir(t *testing.T, f func(dir string)) {
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

func TestCheckWritable(t *testing.T) {
	ok := t.TempDir()
	if err := checkWritable([]writableDir{{flag: "--subnet-file", dir: filepath.Join(ok, "new", "dir")}}); err != nil {
		t.Fatalf("writable directory refused: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(ok, "new", "dir")); len(entries) != 0 {
		t.Fatalf("the check left files behind: %v", entries)
	}
	etcdDir := filepath.Join(ok, "etcd")
	if err := checkWritable([]writableDir{{flag: "--embedded-etcd-dir", dir: etcdDir, private: true}}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(etcdDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("embedded etcd dir created with %v (%v), want 0700", fi.Mode(), err)
	}
	inReadOnlyDir(t, func(ro string) {
		err := checkWritable([]writableDir{
			{flag: "--subnet-file", dir: ok},
			{flag: "--embedded-etcd-dir", dir: filepath.Join(ro, "etcd")},
		})
		if err == nil {
			t.Error("a directory on a read-only file system passed the check")
			return
		}
		if !isConfigError(err) || !errors.Is(err, syscall.EROFS) {
			t.Errorf("want a configuration error wrapping EROFS, got %v", err)
		}
		for _, want := range []string{"--embedded-etcd-dir", filepath.Join(ro, "etcd"), "ReadWritePaths="} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
	})
}

// weftd refuses a subnet file on a read-only file system with exit code 78
// before it connects to etcd (the etcd endpoint here does not exist).
func TestRunRefusesReadOnlySubnetFile(t *testing.T) {
	inReadOnlyDir(t, func(ro string) {
		var stderr strings.Builder
		code := run([]string{"--subnet-file", filepath.Join(ro, "subnet.env"), "--healthz-port", "0",
			"--etcd-endpoints", "http://127.0.0.1:1"}, &stderr)
		if code != exitConfig || !strings.Contains(stderr.String(), "read-only file system") {
			t.Errorf("exit code %d, want %d with a read-only error; log:\n%s", code, exitConfig, stderr.String())
		}
	})
}
