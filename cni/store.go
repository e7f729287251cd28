package cni

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/weftnet/weft/subnet/subnetfile"
)

// Store keeps address allocations on disk in the host-local layout: one
// file per address (IPv4 or IPv6), named by the address, holding
// "<containerID>\r\n<ifname>", plus "lock" and the round-robin positions
// "last_reserved_ip.0" (IPv4) and "last_reserved_ip.1" (IPv6). A
// dual-stack attachment holds two files, one per family; a store written
// before IPv6 simply has none of the second kind. Callers hold the lock (Lock/Unlock)
// around every read-modify-write sequence; the lock is an flock, so it
// serialises separate plugin processes.
type Store struct {
	dir  string
	lock *os.File
}

const (
	lockFileName = "lock"
	lastIPFile   = "last_reserved_ip.0"
	lastIPv6File = "last_reserved_ip.1"
	lineBreak    = "\r\n"
)

// Attachment names one container interface.
type Attachment struct {
	ContainerID string
	IfName      string
}

// OpenStore creates dir if needed and opens its lock file.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("ipam store: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, lockFileName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("ipam store: open lock: %w", err)
	}
	return &Store{dir: dir, lock: f}, nil
}

// OpenLockedStore opens the store at dir and takes its lock (what every
// verb does first); Close releases both.
func OpenLockedStore(dir string) (*Store, error) {
	s, err := OpenStore(dir)
	if err != nil {
		return nil, err
	}
	if err := s.Lock(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the lock file, which also releases a lock taken by Lock
// (flock(2) locks belong to the open file).
func (s *Store) Close() error { return s.lock.Close() }

// Lock takes the store's exclusive lock, waiting for other processes.
func (s *Store) Lock() error {
	for {
		err := syscall.Flock(int(s.lock.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			if err != nil {
				return fmt.Errorf("ipam store: lock: %w", err)
			}
			return nil
		}
	}
}

// Unlock releases the lock taken by Lock.
func (s *Store) Unlock() error {
	if err := syscall.Flock(int(s.lock.Fd()), syscall.LOCK_UN); err != nil {
		return fmt.Errorf("ipam store: unlock: %w", err)
	}
	return nil
}

// ErrPoolExhausted is returned by Allocate when every address is taken.
var ErrPoolExhausted = errors.New("no free address")

// Lookup returns the addresses held by the attachment.
func (s *Store) Lookup(a Attachment) ([]netip.Addr, error) {
	all, err := s.List()
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	for addr, owner := range all {
		if owner == a {
			addrs = append(addrs, addr)
		}
	}
	return addrs, nil
}

// List returns every allocation.
func (s *Store) List() (map[netip.Addr]Attachment, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("ipam store: %w", err)
	}
	out := make(map[netip.Addr]Attachment, len(entries))
	for _, e := range entries {
		addr, err := netip.ParseAddr(e.Name())
		if err != nil || e.IsDir() {
			continue
		}
		data, err := readStoreFile(filepath.Join(s.dir, e.Name()))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("ipam store: %w", err)
		}
		out[addr] = parseOwner(string(data))
	}
	return out, nil
}

// maxStoreFile bounds a file of the address store: a container ID and an
// interface name (or an address), a few hundred bytes at most.
const maxStoreFile = 4 << 10

// readStoreFile reads a file of the address store if it is a regular file
// of at most maxStoreFile bytes (opened without blocking, so a FIFO does
// not wait): a device or a huge file put there is an error, not an
// endless read.
func readStoreFile(path string) ([]byte, error) {
	return subnetfile.ReadBounded(path, maxStoreFile)
}

func parseOwner(content string) Attachment {
	id, ifname, _ := strings.Cut(strings.TrimSpace(content), lineBreak)
	return Attachment{ContainerID: strings.TrimSpace(id), IfName: strings.TrimSpace(ifname)}
}

// Allocate reserves a free address of pool for the attachment, starting
// after the last reserved one of pool's family (round robin, so a released
// address is not handed out again at once). It fails with
// ErrPoolExhausted when none is free. It tries at most one address more
// than the pool has allocated (one of those is free), so an IPv6 /64 is
// never walked.
func (s *Store) Allocate(a Attachment, pool Pool) (netip.Addr, error) {
	start := pool.First()
	if last, err := s.lastReserved(pool); err == nil && pool.Contains(last) {
		start = pool.Next(last)
	}
	held, err := s.countIn(pool)
	if err != nil {
		return netip.Addr{}, err
	}
	tries := pool.Size()
	if held < tries {
		tries = held + 1
	}
	addr := start
	for range tries {
		ok, err := s.reserve(addr, a)
		if err != nil {
			return netip.Addr{}, err
		}
		if ok {
			if err := s.writeLastReserved(pool, addr); err != nil {
				s.remove(addr)
				return netip.Addr{}, err
			}
			return addr, nil
		}
		addr = pool.Next(addr)
	}
	return netip.Addr{}, fmt.Errorf("%w in %s (%d usable addresses, all allocated)", ErrPoolExhausted, pool.Prefix, pool.Size())
}

// countIn counts the allocations of addresses of pool.
func (s *Store) countIn(pool Pool) (uint64, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return 0, fmt.Errorf("ipam store: %w", err)
	}
	var n uint64
	for _, e := range entries {
		if addr, err := netip.ParseAddr(e.Name()); err == nil && pool.Contains(addr) {
			n++
		}
	}
	return n, nil
}

// ErrAddressTaken is returned by AllocateAddr when another attachment holds
// the requested address.
var ErrAddressTaken = errors.New("address already allocated")

// AllocateAddr reserves the given address of pool for the attachment (a
// static IP the runtime asked for). It does not move the round-robin start.
func (s *Store) AllocateAddr(a Attachment, addr netip.Addr, pool Pool) error {
	if !pool.Contains(addr) {
		return fmt.Errorf("%s is not a usable address of this node's subnet %s (the network, gateway %s and broadcast addresses are not)",
			addr, pool.Prefix, pool.Gateway)
	}
	ok, err := s.reserve(addr, a)
	if err != nil {
		return err
	}
	if !ok {
		all, err := s.List()
		if err != nil {
			return err
		}
		owner := all[addr]
		return fmt.Errorf("%w: %s is held by container %s interface %s", ErrAddressTaken, addr, owner.ContainerID, owner.IfName)
	}
	return nil
}

// reserve creates the file of addr; false means it is already taken.
func (s *Store) reserve(addr netip.Addr, a Attachment) (bool, error) {
	path := filepath.Join(s.dir, addr.String())
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("ipam store: reserve %s: %w", addr, err)
	}
	_, werr := f.WriteString(a.ContainerID + lineBreak + a.IfName)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(path)
		return false, fmt.Errorf("ipam store: reserve %s: %w", addr, err)
	}
	return true, nil
}

// lastFile is the round-robin position's file of pool's family.
func lastFile(pool Pool) string {
	if pool.Is6() {
		return lastIPv6File
	}
	return lastIPFile
}

func (s *Store) lastReserved(pool Pool) (netip.Addr, error) {
	data, err := readStoreFile(filepath.Join(s.dir, lastFile(pool)))
	if err != nil {
		return netip.Addr{}, err
	}
	return netip.ParseAddr(strings.TrimSpace(string(data)))
}

func (s *Store) writeLastReserved(pool Pool, addr netip.Addr) error {
	if err := os.WriteFile(filepath.Join(s.dir, lastFile(pool)), []byte(addr.String()), 0o644); err != nil {
		return fmt.Errorf("ipam store: %w", err)
	}
	return nil
}

func (s *Store) remove(addr netip.Addr) error {
	err := os.Remove(filepath.Join(s.dir, addr.String()))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("ipam store: release %s: %w", addr, err)
	}
	return nil
}

// Release frees every address of the attachment and returns them. Freeing
// nothing is not an error (DEL is idempotent).
func (s *Store) Release(a Attachment) ([]netip.Addr, error) {
	addrs, err := s.Lookup(a)
	if err != nil {
		return nil, err
	}
	for _, addr := range addrs {
		if err := s.remove(addr); err != nil {
			return nil, err
		}
	}
	return addrs, nil
}

// ReleaseAllExcept frees the addresses of every attachment not in keep and
// returns what it freed.
func (s *Store) ReleaseAllExcept(keep map[Attachment]bool) (map[netip.Addr]Attachment, error) {
	all, err := s.List()
	if err != nil {
		return nil, err
	}
	freed := map[netip.Addr]Attachment{}
	for addr, owner := range all {
		if keep[owner] {
			continue
		}
		if err := s.remove(addr); err != nil {
			return freed, err
		}
		freed[addr] = owner
	}
	return freed, nil
}
