package overlay

import "net/netip"

// txPath is the state of the TUN->UDP loop: preallocated buffers, the batch
// being built, and per-batch counters. Owned by one goroutine.
type txPath struct {
	table      *PeerTable
	mtu        int // TUN MTU: the largest inner packet that fits the path
	subnetMask uint32
	// subnetMask6Hi/Lo mask an IPv6 destination to its subnet (the source
	// of the ICMPv6 errors about it); notIP is the drop reason of a packet
	// of an IP version the network does not carry.
	subnetMask6Hi, subnetMask6Lo uint64
	v4, v6                       bool
	notIP                        DropReason
	icmp                         *icmpResponder
	ports                        int // source ports to spread flows over (flowBucket)

	bufs    [][]byte // full packet buffers; the TUN reads into bufs[i][bufOffset:]
	sizes   []int
	partial []bool           // packet i is a TCP segment with a partial checksum
	tails   [][]byte         // packet i continues in tails[i] (a TSO segment's payload, see tundev.Device.Read)
	pkts    [][]byte         // datagrams to send: bufs[i][bufOffset-HeaderLen : bufOffset+size-len(tails[i])]...
	ptails  [][]byte         // ... followed by ptails[i]
	dsts    []netip.AddrPort // their destinations
	buckets []uint8          // their flow buckets: the source port to send from
	tally   batchTally
	read    int // packets read into this batch
	out     int // datagrams encapsulated into pkts/dsts
	aqmDrop int // index of a packet the AQM drops, or -1
}

func newTXPath(table *PeerTable, mtu, ports int, icmp *icmpResponder) *txPath {
	hi, lo := prefixMask128(table.v6.subnetLen)
	return &txPath{
		subnetMask6Hi: hi,
		subnetMask6Lo: lo,
		v6:            table.v6.slots != nil,
		v4:            table.slots != nil,
		notIP:         notIPReason(table),
		table:         table,
		mtu:           mtu,
		ports:         ports,
		subnetMask:    prefixMask(table.subnetLen),
		icmp:          icmp,
		bufs:          newBuffers(batchSize),
		sizes:         make([]int, batchSize),
		partial:       make([]bool, batchSize),
		tails:         make([][]byte, batchSize),
		pkts:          make([][]byte, batchSize),
		ptails:        make([][]byte, batchSize),
		dsts:          make([]netip.AddrPort, batchSize),
		buckets:       make([]uint8, batchSize),
		aqmDrop:       -1,
	}
}

// encapBatch classifies the n packets the TUN read into p.bufs, writes the weft
// header in front of each forwarded one, answers unleased or oversized ones
// with ICMP, and returns how many datagrams it put in p.pkts/p.dsts.
func (p *txPath) encapBatch(n int) int {
	out := 0
	for i := 0; i < n; i++ {
		if i == p.aqmDrop {
			p.tally.drop(DropQueueDelay)
			continue
		}
		size := p.sizes[i]
		head := size - len(p.tails[i]) // bytes in buf; the rest is the tail
		buf := p.bufs[i]
		peer, reason := p.encap(buf, head, size)
		if reason != notDropped {
			p.tally.drop(reason)
			pkt := buf[bufOffset : bufOffset+head] // a prefix of the packet: what the ICMP error quotes
			if (reason == DropNoPeer || reason == DropTooBig) && pkt[0]>>4 == 6 {
				p.replyICMPv6(reason, pkt) // encap checked the header
				continue
			}
			switch reason {
			case DropNoPeer:
				p.icmp.reply(icmpCodeNetUnreach, 0, ipv4Dst(pkt)&p.subnetMask, pkt)
			case DropTooBig:
				p.icmp.reply(icmpCodeFragNeeded, p.mtu, ipv4Dst(pkt)&p.subnetMask, pkt)
			}
			continue
		}
		if p.partial[i] {
			buf[bufOffset-1] = flagL4Partial
		}
		p.pkts[out] = buf[bufOffset-HeaderLen : bufOffset+head]
		p.ptails[out] = p.tails[i]
		p.dsts[out] = peer.Endpoint
		p.buckets[out] = flowBucket(buf[bufOffset:bufOffset+head], p.ports)
		out++ // counted as forwarded by the sender once the kernel took it
	}
	return out
}

// encap checks one inner packet of size bytes whose first head bytes are at
// buf[bufOffset:], finds its peer and writes the weft header in place in
// front of it.
func (p *txPath) encap(buf []byte, head, size int) (*Peer, DropReason) {
	pkt := buf[bufOffset : bufOffset+head]
	if head >= 1 && pkt[0]>>4 == 6 && p.v6 {
		return p.encap6(buf, head, size)
	}
	if head < 1 || pkt[0]>>4 != 4 || !p.v4 {
		return nil, p.notIP
	}
	if head < ipv4HeaderLen {
		return nil, DropTruncated
	}
	dst := ipv4Dst(pkt)
	if _, inside := p.table.index(dst); !inside {
		return nil, DropOutsideNetwork
	}
	peer := p.table.LookupIPv4(dst)
	if peer == nil {
		return nil, DropNoPeer
	}
	if size > p.mtu {
		return nil, DropTooBig
	}
	putHeader(buf[bufOffset-HeaderLen : bufOffset])
	return peer, notDropped
}

// encap6 is encap for an inner IPv6 packet (the network has IPv6).
func (p *txPath) encap6(buf []byte, head, size int) (*Peer, DropReason) {
	pkt := buf[bufOffset : bufOffset+head]
	if head < ipv6HeaderLen {
		return nil, DropTruncated
	}
	hi, lo := ipv6Dst(pkt)
	if _, inside := p.table.v6.index(hi, lo); !inside {
		return nil, DropOutsideNetwork
	}
	peer := p.table.LookupIPv6(hi, lo)
	if peer == nil {
		return nil, DropNoPeer
	}
	if size > p.mtu {
		return nil, DropTooBig
	}
	putHeader(buf[bufOffset-HeaderLen : bufOffset])
	return peer, notDropped
}

// replyICMPv6 answers an IPv6 packet dropped for reason with an ICMPv6
// error from its destination subnet's address: destination unreachable (no
// route) for an unleased subnet, Packet Too Big with the TUN's MTU for an
// oversized packet.
func (p *txPath) replyICMPv6(reason DropReason, pkt []byte) {
	hi, lo := ipv6Dst(pkt)
	hi, lo = hi&p.subnetMask6Hi, lo&p.subnetMask6Lo
	switch reason {
	case DropNoPeer:
		p.icmp.reply6(icmpv6TypeDestUnreach, icmpv6CodeNoRoute, 0, hi, lo, pkt)
	case DropTooBig:
		p.icmp.reply6(icmpv6TypePacketTooBig, 0, p.mtu, hi, lo, pkt)
	}
}

// notIPReason is the drop reason of a packet whose IP version the network
// of table does not carry: not_ipv4 on a network without IPv6 (as before
// dual stack), not_ip on one with IPv6.
func notIPReason(table *PeerTable) DropReason {
	if table.v6.slots == nil {
		return DropNotIPv4
	}
	return DropNotIP
}
