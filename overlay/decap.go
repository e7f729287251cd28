package overlay

import "net/netip"

// rxPath is the state of the UDP->TUN loop. Owned by one goroutine.
type rxPath struct {
	table     *PeerTable
	local     uint32 // this node's subnet (network address)
	localMask uint32
	ports     int // a peer sends from its endpoint's port .. port+ports-1 (flow.go)
	// this node's IPv6 subnet (v6: the network has IPv6), and the reason to
	// drop an inner packet of an IP version the network does not carry
	local6Hi, local6Lo, local6MaskHi, local6MaskLo uint64
	v4, v6                                         bool
	notIP                                          DropReason

	bufs    [][]byte // receive buffers (a UDP GRO message may hold many datagrams)
	views   [][]byte // the datagrams received: views into bufs
	srcs    []netip.AddrPort
	writes  [][]byte // inner packets to write: views[i][HeaderLen:]
	partial []bool   // writes[i] is a TCP segment with a partial checksum
	tally   batchTally
	read    int // datagrams received into this batch
	out     int // inner packets put into writes
}

// newRXPath makes the UDP->TUN state for this node's subnets: local (IPv4)
// and local6 (IPv6); an invalid one where the network has no such family.
func newRXPath(table *PeerTable, local, local6 netip.Prefix, ports int) *rxPath {
	p := &rxPath{
		table:   table,
		ports:   max(ports, 1),
		local:   1, // with no IPv4 subnet, matches nothing under localMask 0
		notIP:   notIPReason(table),
		bufs:    newBuffers(batchSize),
		views:   make([][]byte, batchSize),
		srcs:    make([]netip.AddrPort, batchSize),
		writes:  make([][]byte, batchSize),
		partial: make([]bool, batchSize),
	}
	if local.IsValid() && local.Addr().Is4() {
		p.v4 = table.slots != nil
		p.local, p.localMask = addrToUint32(local.Masked().Addr()), prefixMask(local.Bits())
	}
	if local6.IsValid() && local6.Addr().Is6() && table.v6.slots != nil {
		p.v6 = true
		p.local6Hi, p.local6Lo = addrToUint128(local6.Masked().Addr())
		p.local6MaskHi, p.local6MaskLo = prefixMask128(local6.Bits())
	}
	copy(p.views, p.bufs)
	return p
}

// decapBatch validates the n datagrams in p.views and returns how many inner
// packets it put in p.writes for the TUN (views, nothing copied).
func (p *rxPath) decapBatch(n int) int {
	w := 0
	for i := 0; i < n; i++ {
		d := p.views[i]
		innerLen, reason := p.decap(d, p.srcs[i])
		if reason != notDropped {
			p.tally.drop(reason)
			continue
		}
		p.writes[w] = d[HeaderLen : HeaderLen+innerLen]
		p.partial[w] = d[3] == flagL4Partial
		p.tally.packets++
		p.tally.bytes += uint64(innerLen)
		w++
	}
	return w
}

// isTCPWithHeader reports whether the (checked) inner IPv4 packet p is TCP
// and long enough to hold a TCP header.
func isTCPWithHeader(p []byte) bool {
	return p[9] == protoTCP && len(p) >= int(p[0]&0x0f)*4+tcpMinHeaderLen
}

// decap validates one datagram d received from src and decrements the inner
// TTL in place. It returns the inner packet length (the packet is d[HeaderLen:])
// or the reason to drop it. It must never panic, whatever d holds.
func (p *rxPath) decap(d []byte, src netip.AddrPort) (int, DropReason) {
	if r := checkHeader(d); r != notDropped {
		return 0, r
	}
	inner := d[HeaderLen:]
	if len(inner) >= 1 && inner[0]>>4 == 6 && p.v6 {
		return p.decap6(d, src)
	}
	if r := checkInnerIPv4(inner); r != notDropped || !p.v4 {
		if r == DropNotIPv4 || r == notDropped {
			r = p.notIP
		}
		return 0, r
	}
	if r := p.checkSource(ipv4Src(inner), src); r != notDropped {
		return 0, r
	}
	if dst := ipv4Dst(inner); dst&p.localMask != p.local {
		return 0, DropWrongDestination
	} else if dst == p.local|^p.localMask {
		return 0, DropBroadcastDestination
	}
	if inner[0]&0x0f != ipv4HeaderLen/4 {
		return 0, DropIPOptions
	}
	if d[3] == flagL4Partial && !isTCPWithHeader(inner) {
		return 0, DropReservedBits // the flag only has a meaning for TCP
	}
	if !decrementTTL(inner) {
		return 0, DropTTLExpired
	}
	return len(inner), notDropped
}

// decap6 is decap for an inner IPv6 packet (the network has IPv6): the
// same checks, with the hop limit for the TTL; a Hop-by-Hop Options or
// Routing header right after the fixed header counts as IP options.
func (p *rxPath) decap6(d []byte, src netip.AddrPort) (int, DropReason) {
	inner := d[HeaderLen:]
	if r := checkInnerIPv6(inner); r != notDropped {
		return 0, r
	}
	if r := p.checkSource6(inner, src); r != notDropped {
		return 0, r
	}
	if hi, lo := ipv6Dst(inner); hi&p.local6MaskHi != p.local6Hi || lo&p.local6MaskLo != p.local6Lo {
		return 0, DropWrongDestination
	}
	if nh := inner[ipv6NextHeaderOff]; nh == protoHopByHop || nh == protoIPv6Routing {
		return 0, DropIPOptions
	}
	if d[3] == flagL4Partial && !isTCPv6WithHeader(inner) {
		return 0, DropReservedBits
	}
	if !decrementHopLimit(inner) {
		return 0, DropTTLExpired
	}
	return len(inner), notDropped
}

// checkSource6 is checkSource for the IPv6 packet inner: its source must be
// in the IPv6 subnet of the peer that sent it from src, or src's own
// address (the peer's host, over an IPv6 underlay).
func (p *rxPath) checkSource6(inner []byte, src netip.AddrPort) DropReason {
	hi, lo := ipv6Src(inner)
	peer := p.table.LookupIPv6(hi, lo)
	if peer != nil && p.fromEndpoint(peer.Endpoint, src) {
		return notDropped
	}
	if !p.table.knownSender(src, p.ports) {
		return DropUnknownPeer
	}
	if a := src.Addr(); peer == nil && a.Is6() && !a.Is4In6() {
		if shi, slo := addrToUint128(a); shi == hi && slo == lo {
			return notDropped
		}
	}
	return DropSpoofedInnerSource
}

// checkSource attributes an inner source address to the peer that sent the
// datagram from src. The sender must be the peer's lease endpoint: its
// address, from one of its source ports (the endpoint's port and the
// ports-1 above it, all held by the peer's weftd, see flow.go). Accepted are
// inner sources in the subnet src leases, and src's own address (the peer's
// PublicIP: its host answering one of our containers, as a host service or a
// hostPort does without masquerading). Nothing else: not another peer's
// subnet, not another peer's host.
func (p *rxPath) checkSource(innerSrc uint32, src netip.AddrPort) DropReason {
	peer := p.table.LookupIPv4(innerSrc)
	if peer != nil && p.fromEndpoint(peer.Endpoint, src) {
		return notDropped
	}
	if !p.table.knownSender(src, p.ports) {
		return DropUnknownPeer
	}
	if peer == nil && src.Addr().Is4() && innerSrc == addrToUint32(src.Addr()) {
		return notDropped
	}
	return DropSpoofedInnerSource
}

// fromEndpoint reports whether src is ep's address with one of the source
// ports ep.Port() .. ep.Port()+p.ports-1.
func (p *rxPath) fromEndpoint(ep, src netip.AddrPort) bool {
	d := int(src.Port()) - int(ep.Port())
	return d >= 0 && d < p.ports && src.Addr() == ep.Addr()
}
