package cni

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

func mustPool(t *testing.T, subnet string) Pool {
	t.Helper()
	p, err := NewPool(netip.MustParsePrefix(subnet))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPool(t *testing.T) {
	p := mustPool(t, "10.244.7.1/29")
	if p.Size() != 5 {
		t.Fatalf("size %d, want 5", p.Size())
	}
	var got []string
	addr := p.First()
	for range p.Size() + 1 {
		got = append(got, addr.String())
		addr = p.Next(addr)
	}
	want := "[10.244.7.2 10.244.7.3 10.244.7.4 10.244.7.5 10.244.7.6 10.244.7.2]"
	if fmt.Sprint(got) != want {
		t.Fatalf("walk %v, want %s", got, want)
	}
	// A gateway that is not the first address is skipped too.
	p = mustPool(t, "10.244.7.6/29")
	if p.Contains(netip.MustParseAddr("10.244.7.6")) || !p.Contains(netip.MustParseAddr("10.244.7.1")) {
		t.Fatalf("pool with gateway .6: %+v", p)
	}
	for _, bad := range []string{"10.244.7.1/31", "10.244.7.0/24", "10.244.7.255/24", "2001:db8::1/127", "2001:db8::/64", "::ffff:10.244.7.1/120"} {
		if _, err := NewPool(netip.MustParsePrefix(bad)); err == nil {
			t.Fatalf("NewPool(%s) accepted", bad)
		}
	}
}

func allocate(t *testing.T, dir string, a Attachment, pool Pool) (netip.Addr, error) {
	t.Helper()
	s, err := OpenLockedStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	return s.Allocate(a, pool)
}

// OpenLockedStore holds the store's lock until Close, and Close alone
// releases it.
func TestOpenLockedStoreHoldsTheLockUntilClose(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenLockedStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	other, err := os.Open(filepath.Join(dir, lockFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	tryLock := func() error { return syscall.Flock(int(other.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) }
	if err := tryLock(); !errors.Is(err, syscall.EWOULDBLOCK) {
		t.Fatalf("lock while OpenLockedStore holds it: %v, want EWOULDBLOCK", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tryLock(); err != nil {
		t.Fatalf("lock after Close: %v", err)
	}
	if _, err := OpenLockedStore(filepath.Join(dir, lockFileName, "x")); err == nil {
		t.Error("OpenLockedStore under a file: no error")
	}
}

func TestStoreConcurrentAllocationsAreDistinct(t *testing.T) {
	dir := t.TempDir()
	pool := mustPool(t, "10.244.7.1/26") // 61 addresses
	const n = 61
	addrs := make([]netip.Addr, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			addrs[i], errs[i] = allocate(t, dir, Attachment{ContainerID: fmt.Sprintf("c%d", i), IfName: "eth0"}, pool)
		})
	}
	wg.Wait()
	seen := map[netip.Addr]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("allocation %d: %v", i, errs[i])
		}
		if seen[addrs[i]] || !pool.Contains(addrs[i]) {
			t.Fatalf("address %s duplicated or outside the pool", addrs[i])
		}
		seen[addrs[i]] = true
	}
	_, err := allocate(t, dir, Attachment{ContainerID: "one-too-many", IfName: "eth0"}, pool)
	if !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("allocation from a full pool: %v", err)
	}
}

func TestStorePersistsAndReleases(t *testing.T) {
	dir := t.TempDir()
	pool := mustPool(t, "10.244.7.1/24")
	a := Attachment{ContainerID: "abc", IfName: "eth0"}
	b := Attachment{ContainerID: "abc", IfName: "eth1"}
	addrA, err := allocate(t, dir, a, pool)
	if err != nil {
		t.Fatal(err)
	}
	addrB, err := allocate(t, dir, b, pool)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, addrA.String()))
	if err != nil || string(data) != "abc\r\neth0" {
		t.Fatalf("file of %s: %q, %v (want host-local format)", addrA, data, err)
	}

	// A new Store (as after a reboot) sees the allocations.
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Lookup(a)
	if err != nil || len(got) != 1 || got[0] != addrA {
		t.Fatalf("Lookup after reopen: %v %v", got, err)
	}
	freed, err := s.Release(a)
	if err != nil || len(freed) != 1 || freed[0] != addrA {
		t.Fatalf("Release: %v %v", freed, err)
	}
	if freed, err := s.Release(a); err != nil || len(freed) != 0 {
		t.Fatalf("second Release: %v %v", freed, err)
	}
	// Round robin: the released address is not handed out next.
	if next, err := s.Allocate(a, pool); err != nil || next == addrA {
		t.Fatalf("re-allocation got %s (%v), want an address other than %s", next, err, addrA)
	}
	gone, err := s.ReleaseAllExcept(map[Attachment]bool{b: true})
	if err != nil || len(gone) != 1 {
		t.Fatalf("ReleaseAllExcept: %v %v", gone, err)
	}
	all, err := s.List()
	if err != nil || len(all) != 1 || all[addrB] != b {
		t.Fatalf("List after GC: %v %v", all, err)
	}
}
