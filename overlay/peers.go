package overlay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
)

// maxPeerSlots caps the size of each family's slots in a PeerTable (one slot
// per possible subnet).
const maxPeerSlots = 1 << 20

// Peer is another node: its subnet leases (IPv4, IPv6, or both; an invalid
// prefix where the network has no such family or the lease none) and the
// UDP endpoint it receives on (an address of either family, the underlay's).
type Peer struct {
	Subnet     netip.Prefix
	IPv6Subnet netip.Prefix
	Endpoint   netip.AddrPort
}

// TableConfig are the overlay networks a PeerTable covers: an IPv4 network
// with subnets of SubnetLen, an IPv6 network with subnets of IPv6SubnetLen,
// or both (an invalid Network or IPv6Network leaves that family out).
type TableConfig struct {
	Network       netip.Prefix
	SubnetLen     int
	IPv6Network   netip.Prefix
	IPv6SubnetLen int
}

// PeerTable maps a destination address to the peer leasing its subnet in
// O(1): for IPv4, index = (dst - Network) >> (32 - SubnetLen); for IPv6 the
// bits of dst between IPv6Network's length and IPv6SubnetLen (a /56 with /64
// subnets is 256 slots), each into a fixed slice of atomic pointers to
// immutable Peer values. A dual-stack peer sits in one slot of each family
// (the same pointer). Lookups are lock-free; writers (lease events) replace
// slots under a mutex.
type PeerTable struct {
	network   netip.Prefix
	base      uint32 // network address as a big-endian integer (1 without IPv4: matches nothing)
	mask      uint32 // network mask
	shift     uint32 // 32 - subnetLen
	subnetLen int
	slots     []atomic.Pointer[Peer]

	v6 v6Slots

	// mu serialises writers. endpoints maps an endpoint to the number of
	// peers holding it; it is copied on write and only read on the drop
	// path, to tell an unknown sender from a known peer spoofing its inner
	// source.
	mu        sync.Mutex
	endpoints atomic.Pointer[map[netip.AddrPort]int]
}

// v6Slots are the IPv6 half of a PeerTable. An address is inside the
// network when hi&maskHi == baseHi and lo&maskLo == baseLo; its slot is
// (addr >> shift) & idxMask (128-bit shift of hi:lo).
type v6Slots struct {
	network                        netip.Prefix
	subnetLen                      int
	baseHi, baseLo, maskHi, maskLo uint64
	shift                          uint // 128 - subnetLen
	idxMask                        uint64
	slots                          []atomic.Pointer[Peer]
}

// NewPeerTable returns an empty IPv4 table for subnets of length subnetLen
// inside network.
func NewPeerTable(network netip.Prefix, subnetLen int) (*PeerTable, error) {
	if !network.IsValid() || !network.Addr().Is4() {
		return nil, fmt.Errorf("peer table: network %v is not an IPv4 prefix", network)
	}
	return NewPeerTableFor(TableConfig{Network: network, SubnetLen: subnetLen})
}

// NewPeerTableFor returns an empty table for the networks of c (at least one).
func NewPeerTableFor(c TableConfig) (*PeerTable, error) {
	t := &PeerTable{base: 1} // without IPv4, base 1 and mask 0 match nothing
	if !c.Network.IsValid() && !c.IPv6Network.IsValid() {
		return nil, errors.New("peer table: no network (IPv4 or IPv6)")
	}
	if c.Network.IsValid() {
		network := c.Network.Masked()
		subnetLen := c.SubnetLen
		if !network.Addr().Is4() {
			return nil, fmt.Errorf("peer table: network %v is not an IPv4 prefix", c.Network)
		}
		if subnetLen < network.Bits() || subnetLen > 32 {
			return nil, fmt.Errorf("peer table: subnet length %d outside [%d, 32] for network %v", subnetLen, network.Bits(), network)
		}
		if subnetLen-network.Bits() > 20 {
			return nil, fmt.Errorf("peer table: %v with /%d subnets needs 2^%d slots, more than %d", network, subnetLen, subnetLen-network.Bits(), maxPeerSlots)
		}
		t.network = network
		t.base = addrToUint32(network.Addr())
		t.mask = prefixMask(network.Bits())
		t.shift = uint32(32 - subnetLen)
		t.subnetLen = subnetLen
		t.slots = make([]atomic.Pointer[Peer], 1<<(subnetLen-network.Bits()))
	}
	if c.IPv6Network.IsValid() {
		network := c.IPv6Network.Masked()
		subnetLen := c.IPv6SubnetLen
		if !network.Addr().Is6() || network.Addr().Is4In6() || network.Addr().Zone() != "" {
			return nil, fmt.Errorf("peer table: IPv6 network %v is not an IPv6 prefix", c.IPv6Network)
		}
		if subnetLen < network.Bits() || subnetLen > 128 {
			return nil, fmt.Errorf("peer table: IPv6 subnet length %d outside [%d, 128] for network %v", subnetLen, network.Bits(), network)
		}
		if subnetLen-network.Bits() > 20 {
			return nil, fmt.Errorf("peer table: %v with /%d subnets needs 2^%d slots, more than %d", network, subnetLen, subnetLen-network.Bits(), maxPeerSlots)
		}
		hi, lo := addrToUint128(network.Addr())
		mhi, mlo := prefixMask128(network.Bits())
		n := 1 << (subnetLen - network.Bits())
		t.v6 = v6Slots{network: network, subnetLen: subnetLen, baseHi: hi, baseLo: lo, maskHi: mhi, maskLo: mlo,
			shift: uint(128 - subnetLen), idxMask: uint64(n - 1), slots: make([]atomic.Pointer[Peer], n)}
	}
	empty := map[netip.AddrPort]int{}
	t.endpoints.Store(&empty)
	return t, nil
}

// Network returns the IPv4 overlay network the table covers (invalid when none).
func (t *PeerTable) Network() netip.Prefix { return t.network }

// SubnetLen returns the length of every IPv4 subnet in the table.
func (t *PeerTable) SubnetLen() int { return t.subnetLen }

// IPv6Network returns the IPv6 overlay network the table covers (invalid when none).
func (t *PeerTable) IPv6Network() netip.Prefix { return t.v6.network }

// IPv6SubnetLen returns the length of every IPv6 subnet in the table.
func (t *PeerTable) IPv6SubnetLen() int { return t.v6.subnetLen }

// index returns the slot of dst (host byte order integer) and whether dst is inside the network.
func (t *PeerTable) index(dst uint32) (uint32, bool) {
	if dst&t.mask != t.base {
		return 0, false
	}
	return (dst - t.base) >> t.shift, true
}

// index6 returns the IPv6 slot of the address hi:lo (its two big-endian
// halves) and whether it is inside the IPv6 network.
func (s *v6Slots) index(hi, lo uint64) (uint64, bool) {
	if s.slots == nil || hi&s.maskHi != s.baseHi || lo&s.maskLo != s.baseLo {
		return 0, false
	}
	var v uint64
	if s.shift >= 64 {
		v = hi >> (s.shift - 64)
	} else {
		v = hi<<(64-s.shift) | lo>>s.shift
	}
	return v & s.idxMask, true
}

func (t *PeerTable) slotOf(subnet netip.Prefix) (uint32, error) {
	if !subnet.IsValid() || !subnet.Addr().Is4() {
		return 0, fmt.Errorf("subnet %v is not an IPv4 prefix", subnet)
	}
	if t.slots == nil {
		return 0, fmt.Errorf("subnet %v: the network has no IPv4", subnet)
	}
	if subnet.Bits() != t.subnetLen {
		return 0, fmt.Errorf("subnet %v: length must be /%d", subnet, t.subnetLen)
	}
	if subnet.Masked() != subnet {
		return 0, fmt.Errorf("subnet %v is not aligned (network form is %v)", subnet, subnet.Masked())
	}
	i, ok := t.index(addrToUint32(subnet.Addr()))
	if !ok {
		return 0, fmt.Errorf("subnet %v is outside network %v", subnet, t.network)
	}
	return i, nil
}

func (t *PeerTable) slot6Of(subnet netip.Prefix) (uint64, error) {
	if !subnet.IsValid() || !subnet.Addr().Is6() || subnet.Addr().Is4In6() {
		return 0, fmt.Errorf("IPv6 subnet %v is not an IPv6 prefix", subnet)
	}
	if t.v6.slots == nil {
		return 0, fmt.Errorf("IPv6 subnet %v: the network has no IPv6", subnet)
	}
	if subnet.Bits() != t.v6.subnetLen {
		return 0, fmt.Errorf("IPv6 subnet %v: length must be /%d", subnet, t.v6.subnetLen)
	}
	if subnet.Masked() != subnet {
		return 0, fmt.Errorf("IPv6 subnet %v is not aligned (network form is %v)", subnet, subnet.Masked())
	}
	i, ok := t.v6.index(addrToUint128(subnet.Addr()))
	if !ok {
		return 0, fmt.Errorf("IPv6 subnet %v is outside network %v", subnet, t.v6.network)
	}
	return i, nil
}

// checkPeer validates p and returns it in the form the table stores
// (endpoint address unmapped) with its slots: -1 for a family it has none of.
func (t *PeerTable) checkPeer(p Peer) (np *Peer, i4, i6 int64, err error) {
	i4, i6 = -1, -1
	if !p.Subnet.IsValid() && !p.IPv6Subnet.IsValid() {
		return nil, 0, 0, errors.New("peer has no subnet")
	}
	if p.Subnet.IsValid() {
		i, err := t.slotOf(p.Subnet)
		if err != nil {
			return nil, 0, 0, err
		}
		i4 = int64(i)
	}
	if p.IPv6Subnet.IsValid() {
		i, err := t.slot6Of(p.IPv6Subnet)
		if err != nil {
			return nil, 0, 0, err
		}
		i6 = int64(i)
	}
	ep := netip.AddrPortFrom(p.Endpoint.Addr().Unmap(), p.Endpoint.Port())
	if !ep.Addr().IsValid() || ep.Addr().IsUnspecified() || ep.Addr().Zone() != "" || ep.Port() == 0 {
		return nil, 0, 0, fmt.Errorf("endpoint %v must be an address (IPv4 or IPv6, no zone) with a port", p.Endpoint)
	}
	return &Peer{Subnet: p.Subnet, IPv6Subnet: p.IPv6Subnet, Endpoint: ep}, i4, i6, nil
}

// name is how errors name a peer.
func (p Peer) name() string {
	switch {
	case p.Subnet.IsValid() && p.IPv6Subnet.IsValid():
		return p.Subnet.String() + "&" + p.IPv6Subnet.String()
	case p.IPv6Subnet.IsValid():
		return p.IPv6Subnet.String()
	}
	return p.Subnet.String()
}

// Set installs or replaces the peer leasing p.Subnet and/or p.IPv6Subnet.
// A peer that held either slot before is removed wholly (its other
// family's slot too): a lease is one node's, both families.
func (t *PeerTable) Set(p Peer) error {
	np, i4, i6, err := t.checkPeer(p)
	if err != nil {
		return fmt.Errorf("set peer %v: %w", p.name(), err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var old4, old6 *Peer
	if i4 >= 0 {
		old4 = t.slots[i4].Swap(np)
	}
	if i6 >= 0 {
		old6 = t.v6.slots[i6].Swap(np)
	}
	t.updateEndpoints(func(m map[netip.AddrPort]int) {
		if old4 != nil {
			t.unlink(old4)
			decEndpoint(m, old4.Endpoint)
		}
		if old6 != nil && old6 != old4 {
			t.unlink(old6)
			decEndpoint(m, old6.Endpoint)
		}
		m[np.Endpoint]++
	})
	return nil
}

// unlink clears the slots that still point at old (not the ones a new peer
// took over). Every peer in the table is in one slot per family it leases
// and counted once in endpoints; callers hold t.mu and uncount it.
func (t *PeerTable) unlink(old *Peer) {
	if old.Subnet.IsValid() {
		if i, err := t.slotOf(old.Subnet); err == nil {
			t.slots[i].CompareAndSwap(old, nil)
		}
	}
	if old.IPv6Subnet.IsValid() {
		if i, err := t.slot6Of(old.IPv6Subnet); err == nil {
			t.v6.slots[i].CompareAndSwap(old, nil)
		}
	}
}

// Remove deletes the peer leasing subnet (IPv4 or IPv6), if any, with its
// slot of the other family. An invalid subnet is ignored.
func (t *PeerTable) Remove(subnet netip.Prefix) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var old *Peer
	if i, err := t.slotOf(subnet); err == nil {
		old = t.slots[i].Load()
	} else if i, err := t.slot6Of(subnet); err == nil {
		old = t.v6.slots[i].Load()
	}
	if old == nil {
		return
	}
	t.updateEndpoints(func(m map[netip.AddrPort]int) {
		t.unlink(old)
		decEndpoint(m, old.Endpoint)
	})
}

// Reset replaces the whole table with peers (after a re-list). Invalid peers
// are skipped; the first error is returned after the rest were installed.
func (t *PeerTable) Reset(peers []Peer) {
	_ = t.ResetChecked(peers)
}

// ResetChecked is Reset that reports the peers it had to skip. A later
// peer sharing a subnet with an earlier one replaces it wholly, as Set does.
func (t *PeerTable) ResetChecked(peers []Peer) error {
	next4 := make(map[int64]*Peer, len(peers))
	next6 := make(map[int64]*Peer, len(peers))
	var errs []error
	drop := func(old *Peer) {
		for i, q := range next4 {
			if q == old {
				delete(next4, i)
			}
		}
		for i, q := range next6 {
			if q == old {
				delete(next6, i)
			}
		}
	}
	for _, p := range peers {
		np, i4, i6, err := t.checkPeer(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("reset peer %v: %w", p.name(), err))
			continue
		}
		if i4 >= 0 {
			if old := next4[i4]; old != nil {
				drop(old)
			}
			next4[i4] = np
		}
		if i6 >= 0 {
			if old := next6[i6]; old != nil {
				drop(old)
			}
			next6[i6] = np
		}
	}
	endpoints := make(map[netip.AddrPort]int, len(peers))
	counted := make(map[*Peer]bool, len(peers))
	for _, m := range []map[int64]*Peer{next4, next6} {
		for _, p := range m {
			if !counted[p] {
				counted[p] = true
				endpoints[p.Endpoint]++
			}
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.slots {
		if p, ok := next4[int64(i)]; ok {
			t.slots[i].Store(p)
		} else if t.slots[i].Load() != nil {
			t.slots[i].Store(nil)
		}
	}
	for i := range t.v6.slots {
		if p, ok := next6[int64(i)]; ok {
			t.v6.slots[i].Store(p)
		} else if t.v6.slots[i].Load() != nil {
			t.v6.slots[i].Store(nil)
		}
	}
	t.endpoints.Store(&endpoints)
	return errors.Join(errs...)
}

// Lookup returns the peer whose subnet (of either family) contains dst, or nil.
func (t *PeerTable) Lookup(dst netip.Addr) *Peer {
	if dst.Is4() {
		return t.LookupIPv4(addrToUint32(dst))
	}
	if dst.Is6() && !dst.Is4In6() {
		return t.LookupIPv6(addrToUint128(dst))
	}
	return nil
}

// LookupIPv4 is the hot-path Lookup for an address given as a big-endian
// integer (the 4 address bytes of an IPv4 header read with binary.BigEndian).
func (t *PeerTable) LookupIPv4(dst uint32) *Peer {
	i, ok := t.index(dst)
	if !ok {
		return nil
	}
	return t.slots[i].Load()
}

// LookupIPv6 is the hot-path Lookup for an IPv6 address given as its two
// big-endian 64-bit halves (as read from an IPv6 header).
func (t *PeerTable) LookupIPv6(hi, lo uint64) *Peer {
	i, ok := t.v6.index(hi, lo)
	if !ok {
		return nil
	}
	return t.v6.slots[i].Load()
}

// Peers returns a snapshot of all peers, ordered by IPv4 subnet, then the
// IPv6-only ones by IPv6 subnet.
func (t *PeerTable) Peers() []Peer {
	var out []Peer
	for i := range t.slots {
		if p := t.slots[i].Load(); p != nil {
			out = append(out, *p)
		}
	}
	for i := range t.v6.slots {
		if p := t.v6.slots[i].Load(); p != nil && !p.Subnet.IsValid() {
			out = append(out, *p)
		}
	}
	return out
}

// knownEndpoint reports whether ep is the endpoint of any peer (drop path only).
func (t *PeerTable) knownEndpoint(ep netip.AddrPort) bool { return t.knownSender(ep, 1) }

// knownSender reports whether src is a source port of some peer's endpoint:
// its address with a port from the endpoint's up to ports-1 above it (drop
// path only). It does not allocate.
func (t *PeerTable) knownSender(src netip.AddrPort, ports int) bool {
	m := *t.endpoints.Load()
	a := src.Addr().Unmap()
	for d := 0; d < ports && d < int(src.Port()); d++ {
		if m[netip.AddrPortFrom(a, src.Port()-uint16(d))] > 0 {
			return true
		}
	}
	return false
}

// updateEndpoints applies change to a copy of the endpoint index and publishes it.
// Callers hold t.mu.
func (t *PeerTable) updateEndpoints(change func(map[netip.AddrPort]int)) {
	cur := *t.endpoints.Load()
	next := make(map[netip.AddrPort]int, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	change(next)
	t.endpoints.Store(&next)
}

func decEndpoint(m map[netip.AddrPort]int, ep netip.AddrPort) {
	if m[ep] <= 1 {
		delete(m, ep)
	} else {
		m[ep]--
	}
}

func addrToUint32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func uint32ToAddr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func prefixMask(bits int) uint32 {
	if bits == 0 {
		return 0
	}
	return ^uint32(0) << (32 - bits)
}

// addrToUint128 returns the two big-endian halves of an IPv6 address.
func addrToUint128(a netip.Addr) (hi, lo uint64) {
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
}

func uint128ToAddr(hi, lo uint64) netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	return netip.AddrFrom16(b)
}

// prefixMask128 is the mask of an IPv6 prefix of bits, as two halves.
func prefixMask128(bits int) (hi, lo uint64) {
	switch {
	case bits <= 0:
		return 0, 0
	case bits <= 64:
		return ^uint64(0) << (64 - bits), 0
	}
	return ^uint64(0), ^uint64(0) << (128 - bits)
}
