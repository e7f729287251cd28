//go:build !unit

package writecheck

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/weftnet/weft/testbed"
)

func TestCheck(t *testing.T) {
	ok := t.TempDir()
	if err := Check([]Dir{{Flag: "--subnet-file", Path: filepath.Join(ok, "new", "dir")}}); err != nil {
		t.Fatalf("writable directory refused: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(ok, "new", "dir")); len(entries) != 0 {
		t.Fatalf("the check left files behind: %v", entries)
	}
	etcdDir := filepath.Join(ok, "etcd")
	if err := Check([]Dir{{Flag: "--embedded-etcd-dir", Path: etcdDir, Private: true}}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(etcdDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("embedded etcd dir created with %v (%v), want 0700", fi.Mode(), err)
	}
	testbed.InReadOnlyDir(t, func(ro string) {
		err := Check([]Dir{
			{Flag: "--subnet-file", Path: ok},
			{Flag: "--embedded-etcd-dir", Path: filepath.Join(ro, "etcd")},
		})
		if err == nil {
			t.Error("a directory on a read-only file system passed the check")
			return
		}
		if !errors.Is(err, syscall.EROFS) {
			t.Errorf("want an error wrapping EROFS, got %v", err)
		}
		for _, want := range []string{"--embedded-etcd-dir", filepath.Join(ro, "etcd"), "ReadWritePaths="} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
	})
}
