package cni

import (
	"fmt"
	"math"
	"net/netip"
)

// Pool is the set of addresses of one family handed to containers: the
// node subnet minus its first address (IPv4's network address, IPv6's
// subnet-router anycast), its last (IPv4's broadcast; kept out of IPv6
// pools too, where it is an anycast address of RFC 2526 on a /64) and the
// gateway.
type Pool struct {
	// Prefix is the node subnet, masked (e.g. 10.244.7.0/24 or
	// fd10:244:0:7::/64).
	Prefix netip.Prefix
	// Gateway is the bridge address (e.g. 10.244.7.1 or fd10:244:0:7::1).
	Gateway netip.Addr
}

// NewPool builds the pool of a subnet written as gateway/len (the subnet
// file's WEFT_SUBNET or WEFT_IPV6_SUBNET form, e.g. 10.244.7.1/24 or
// fd10:244:0:7::1/64).
func NewPool(subnet netip.Prefix) (Pool, error) {
	a := subnet.Addr()
	if !subnet.IsValid() || a.Is4In6() || a.Zone() != "" {
		return Pool{}, fmt.Errorf("subnet %s is not an IPv4 or IPv6 prefix", subnet)
	}
	if subnet.Bits() > a.BitLen()-2 {
		return Pool{}, fmt.Errorf("subnet %s is too small for a gateway and containers", subnet)
	}
	p := Pool{Prefix: subnet.Masked(), Gateway: a}
	if p.Gateway == p.Prefix.Addr() || p.Gateway == p.last() {
		return Pool{}, fmt.Errorf("gateway %s is the first or last address of %s", p.Gateway, p.Prefix)
	}
	return p, nil
}

// Is6 tells whether the pool is an IPv6 one.
func (p Pool) Is6() bool { return p.Prefix.Addr().Is6() }

// last is the subnet's last address (all host bits set).
func (p Pool) last() netip.Addr {
	b := p.Prefix.Addr().AsSlice()
	for i := p.Prefix.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Contains reports whether addr may be handed out.
func (p Pool) Contains(addr netip.Addr) bool {
	return p.Prefix.Contains(addr) && addr != p.Prefix.Addr() && addr != p.last() && addr != p.Gateway
}

// Size is the number of addresses that may be handed out, at most
// math.MaxUint64 (an IPv6 subnet shorter than /64 has more).
func (p Pool) Size() uint64 {
	hostBits := p.Prefix.Addr().BitLen() - p.Prefix.Bits()
	if hostBits >= 64 {
		return math.MaxUint64
	}
	return 1<<hostBits - 3
}

// First is the lowest address that may be handed out.
func (p Pool) First() netip.Addr { return p.Next(p.Prefix.Addr()) }

// Next is the address after addr in the pool, wrapping around.
func (p Pool) Next(addr netip.Addr) netip.Addr {
	for {
		addr = addr.Next()
		if !addr.IsValid() || !p.Prefix.Contains(addr) {
			addr = p.Prefix.Addr()
			continue
		}
		if p.Contains(addr) {
			return addr
		}
	}
}
