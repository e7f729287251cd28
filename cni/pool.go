package cni

import (
	"fmt"
	"net/netip"
)

// Pool is the set of addresses handed to containers: the node subnet minus
// its network address, broadcast address and gateway.
type Pool struct {
	// Prefix is the node subnet, masked (e.g. 10.244.7.0/24).
	Prefix netip.Prefix
	// Gateway is the bridge address (e.g. 10.244.7.1).
	Gateway netip.Addr
}

// NewPool builds the pool of a subnet written as gateway/len (the subnet
// file's WEFT_SUBNET form, e.g. 10.244.7.1/24).
func NewPool(subnet netip.Prefix) (Pool, error) {
	if !subnet.Addr().Is4() {
		return Pool{}, fmt.Errorf("subnet %s is not IPv4", subnet)
	}
	if subnet.Bits() > 30 {
		return Pool{}, fmt.Errorf("subnet %s is too small for a gateway and containers", subnet)
	}
	p := Pool{Prefix: subnet.Masked(), Gateway: subnet.Addr()}
	if p.Gateway == p.Prefix.Addr() || p.Gateway == p.broadcast() {
		return Pool{}, fmt.Errorf("gateway %s is the network or broadcast address of %s", p.Gateway, p.Prefix)
	}
	return p, nil
}

func (p Pool) broadcast() netip.Addr {
	a := p.Prefix.Addr().As4()
	host := uint32(1)<<(32-p.Prefix.Bits()) - 1
	v := (uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Contains reports whether addr may be handed out.
func (p Pool) Contains(addr netip.Addr) bool {
	return p.Prefix.Contains(addr) && addr != p.Prefix.Addr() && addr != p.broadcast() && addr != p.Gateway
}

// Size is the number of addresses that may be handed out.
func (p Pool) Size() int { return 1<<(32-p.Prefix.Bits()) - 3 }

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
