package overlay

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
)

// maxPeerSlots caps the size of a PeerTable (one slot per possible subnet).
const maxPeerSlots = 1 << 20

// Peer is another node: its subnet lease and the UDP endpoint it receives on.
type Peer struct {
	Subnet   netip.Prefix
	Endpoint netip.AddrPort
}

// PeerTable maps a destination address to the peer leasing its subnet in O(1):
// index = (dst - Network) >> (32 - SubnetLen) into a fixed slice of atomic
// pointers to immutable Peer values. Lookups are lock-free; writers (lease
// events) replace single slots under a mutex.
type PeerTable struct {
	network   netip.Prefix
	base      uint32 // network address as a big-endian integer
	mask      uint32 // network mask
	shift     uint32 // 32 - subnetLen
	subnetLen int
	slots     []atomic.Pointer[Peer]

	// mu serialises writers. endpoints maps endpointKey -> number of slots
	// holding that endpoint; it is copied on write and only read on the drop
	// path, to tell an unknown sender from a known peer spoofing its inner source.
	mu        sync.Mutex
	endpoints atomic.Pointer[map[uint64]int]
}

// NewPeerTable returns an empty table for subnets of length subnetLen inside network.
func NewPeerTable(network netip.Prefix, subnetLen int) (*PeerTable, error) {
	if !network.IsValid() || !network.Addr().Is4() {
		return nil, fmt.Errorf("peer table: network %v is not an IPv4 prefix", network)
	}
	network = network.Masked()
	if subnetLen < network.Bits() || subnetLen > 32 {
		return nil, fmt.Errorf("peer table: subnet length %d outside [%d, 32] for network %v", subnetLen, network.Bits(), network)
	}
	if subnetLen-network.Bits() > 20 {
		return nil, fmt.Errorf("peer table: %v with /%d subnets needs 2^%d slots, more than %d", network, subnetLen, subnetLen-network.Bits(), maxPeerSlots)
	}
	t := &PeerTable{
		network:   network,
		base:      addrToUint32(network.Addr()),
		mask:      prefixMask(network.Bits()),
		shift:     uint32(32 - subnetLen),
		subnetLen: subnetLen,
		slots:     make([]atomic.Pointer[Peer], 1<<(subnetLen-network.Bits())),
	}
	empty := map[uint64]int{}
	t.endpoints.Store(&empty)
	return t, nil
}

// Network returns the overlay network the table covers.
func (t *PeerTable) Network() netip.Prefix { return t.network }

// SubnetLen returns the length of every subnet in the table.
func (t *PeerTable) SubnetLen() int { return t.subnetLen }

// index returns the slot of dst (host byte order integer) and whether dst is inside the network.
func (t *PeerTable) index(dst uint32) (uint32, bool) {
	if dst&t.mask != t.base {
		return 0, false
	}
	return (dst - t.base) >> t.shift, true
}

func (t *PeerTable) slotOf(subnet netip.Prefix) (uint32, error) {
	if !subnet.IsValid() || !subnet.Addr().Is4() {
		return 0, fmt.Errorf("subnet %v is not an IPv4 prefix", subnet)
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

// Set installs or replaces the peer leasing p.Subnet.
func (t *PeerTable) Set(p Peer) error {
	i, err := t.slotOf(p.Subnet)
	if err != nil {
		return fmt.Errorf("set peer: %w", err)
	}
	ep := netip.AddrPortFrom(p.Endpoint.Addr().Unmap(), p.Endpoint.Port())
	if !ep.Addr().Is4() || ep.Port() == 0 {
		return fmt.Errorf("set peer %v: endpoint %v must be an IPv4 address with a port", p.Subnet, p.Endpoint)
	}
	np := &Peer{Subnet: p.Subnet, Endpoint: ep}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.slots[i].Swap(np)
	t.updateEndpoints(func(m map[uint64]int) {
		if old != nil {
			decEndpoint(m, old.Endpoint)
		}
		m[endpointKey(ep)]++
	})
	return nil
}

// Remove deletes the peer leasing subnet, if any. An invalid subnet is ignored.
func (t *PeerTable) Remove(subnet netip.Prefix) {
	i, err := t.slotOf(subnet)
	if err != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if old := t.slots[i].Swap(nil); old != nil {
		t.updateEndpoints(func(m map[uint64]int) { decEndpoint(m, old.Endpoint) })
	}
}

// Reset replaces the whole table with peers (after a re-list). Invalid peers
// are skipped; the first error is returned after the rest were installed.
func (t *PeerTable) Reset(peers []Peer) {
	_ = t.ResetChecked(peers)
}

// ResetChecked is Reset that reports the peers it had to skip.
func (t *PeerTable) ResetChecked(peers []Peer) error {
	next := make(map[uint32]*Peer, len(peers))
	endpoints := make(map[uint64]int, len(peers))
	var errs []error
	for _, p := range peers {
		i, err := t.slotOf(p.Subnet)
		ep := netip.AddrPortFrom(p.Endpoint.Addr().Unmap(), p.Endpoint.Port())
		if err == nil && (!ep.Addr().Is4() || ep.Port() == 0) {
			err = fmt.Errorf("endpoint %v must be an IPv4 address with a port", p.Endpoint)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("reset peer %v: %w", p.Subnet, err))
			continue
		}
		if old, dup := next[i]; dup {
			decEndpoint(endpoints, old.Endpoint)
		}
		next[i] = &Peer{Subnet: p.Subnet, Endpoint: ep}
		endpoints[endpointKey(ep)]++
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.slots {
		if p, ok := next[uint32(i)]; ok {
			t.slots[i].Store(p)
		} else if t.slots[i].Load() != nil {
			t.slots[i].Store(nil)
		}
	}
	t.endpoints.Store(&endpoints)
	return errors.Join(errs...)
}

// Lookup returns the peer whose subnet contains dst, or nil.
func (t *PeerTable) Lookup(dst netip.Addr) *Peer {
	if !dst.Is4() {
		return nil
	}
	return t.LookupIPv4(addrToUint32(dst))
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

// Peers returns a snapshot of all peers, ordered by subnet.
func (t *PeerTable) Peers() []Peer {
	var out []Peer
	for i := range t.slots {
		if p := t.slots[i].Load(); p != nil {
			out = append(out, *p)
		}
	}
	return out
}

// knownEndpoint reports whether ep is the endpoint of any peer (drop path only).
func (t *PeerTable) knownEndpoint(ep netip.AddrPort) bool { return t.knownSender(ep, 1) }

// knownSender reports whether src is a source port of some peer's endpoint:
// its address with a port from the endpoint's up to ports-1 above it (drop
// path only).
func (t *PeerTable) knownSender(src netip.AddrPort, ports int) bool {
	m := *t.endpoints.Load()
	for d := 0; d < ports && d < int(src.Port()); d++ {
		if m[endpointKey(netip.AddrPortFrom(src.Addr(), src.Port()-uint16(d)))] > 0 {
			return true
		}
	}
	return false
}

// updateEndpoints applies change to a copy of the endpoint index and publishes it.
// Callers hold t.mu.
func (t *PeerTable) updateEndpoints(change func(map[uint64]int)) {
	cur := *t.endpoints.Load()
	next := make(map[uint64]int, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	change(next)
	t.endpoints.Store(&next)
}

func decEndpoint(m map[uint64]int, ep netip.AddrPort) {
	k := endpointKey(ep)
	if m[k] <= 1 {
		delete(m, k)
	} else {
		m[k]--
	}
}

// endpointKey packs an IPv4 address and port into one integer.
func endpointKey(ep netip.AddrPort) uint64 {
	a := ep.Addr().Unmap()
	if !a.Is4() {
		return 0
	}
	return uint64(addrToUint32(a))<<16 | uint64(ep.Port())
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
