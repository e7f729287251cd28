package nodelock

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Issue 24 item 6: every run left its lock file behind (62 -> 64 files in
// /run/weft over one demo).
func TestLockFileRemovedAtRelease(t *testing.T) {
	path := filepath.Join(t.TempDir(), "weft", "weftd.lock")
	l, err := Acquire(path)
	if err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(path); err != nil || strings.TrimSpace(string(data)) != strconv.Itoa(os.Getpid()) {
		t.Fatalf("lock file holds %q, %v: want this pid", data, err)
	}
	second, err := Acquire(path)
	if err == nil || !strings.Contains(err.Error(), "another weftd (pid "+strconv.Itoa(os.Getpid())+")") {
		t.Fatalf("a second lock while the first is held: %v, %v", second, err)
	}
	l.Release()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("lock file left after release: %v", err)
	}
	// And the next daemon takes it again.
	l, err = Acquire(path)
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
}

// Removing the file must not let two daemons hold "the" lock: one that
// opened the file just before the holder removed it must not count the
// removed file's lock as its own. Many takers race; at most one may hold
// the lock at any time.
func TestLockExcludesWhileFilesAreRemoved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "weftd.lock")
	var holders, maxHolders, taken atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 300 {
				l, err := Acquire(path)
				if err != nil {
					if !strings.Contains(err.Error(), "another weftd") {
						t.Error(err)
						return
					}
					continue
				}
				n := holders.Add(1)
				if n > maxHolders.Load() {
					maxHolders.Store(n)
				}
				taken.Add(1)
				time.Sleep(20 * time.Microsecond) // a holder holds a while
				holders.Add(-1)
				l.Release()
			}
		})
	}
	wg.Wait()
	if maxHolders.Load() > 1 || taken.Load() == 0 {
		t.Fatalf("%d holders at once (want 1), lock taken %d times", maxHolders.Load(), taken.Load())
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("lock file left after every holder released it: %v", err)
	}
}
