package overlay

import "encoding/binary"

// Outer source ports by inner flow. As VXLAN and Geneve do, a sender picks
// the outer UDP source port from a hash of the inner flow, so that the
// underlay (ECMP, fq_codel) and the receiver (RSS, the SO_REUSEPORT group of
// --queues) see the inner flows as separate flows. A flow always gets the
// same port, so its datagrams keep their order on every path that keeps a
// UDP flow's order. The ports are Port .. Port+SourcePorts-1; the sender
// holds every one of them (one socket each, bound without SO_REUSEPORT with
// one queue), so no other process of its host can send from them, and a
// receiver accepts a peer's datagrams from exactly that range of its lease
// endpoint's address (checkSource).

// DefaultSourcePorts is Config.SourcePorts when it is 0.
const DefaultSourcePorts = 8

// MaxSourcePorts bounds Config.SourcePorts (a socket per port and queue).
const MaxSourcePorts = 64

// flowBucket maps the inner IPv4 packet pkt (at least ipv4HeaderLen bytes,
// header checked by encap) to one of n source ports: a hash of its
// addresses and protocol, and its ports when it is TCP, UDP or SCTP and no
// fragment (a fragment carries no ports, so all of a datagram's fragments
// go the same way, as the kernel's flow dissector does).
func flowBucket(pkt []byte, n int) uint8 {
	if n <= 1 {
		return 0
	}
	if pkt[0]>>4 == 6 {
		return flowBucket6(pkt, n)
	}
	addrs := binary.BigEndian.Uint64(pkt[12:20])
	proto := pkt[9]
	var ports uint32
	ihl := int(pkt[0]&0x0f) * 4
	fragment := binary.BigEndian.Uint16(pkt[6:8])&0x3fff != 0 // MF or an offset
	if !fragment && len(pkt) >= ihl+4 && (proto == protoTCP || proto == protoUDP || proto == protoSCTP) {
		ports = binary.BigEndian.Uint32(pkt[ihl:])
	}
	return bucketOf(addrs^(uint64(ports)<<8|uint64(proto))*0x9e3779b97f4a7c15, n)
}

// flowBucket6 is flowBucket for the inner IPv6 packet pkt (at least
// ipv6HeaderLen bytes): its addresses folded to 64 bits, the next header
// and, for TCP, UDP or SCTP right after the fixed header, the ports (a
// fragment's next header is the Fragment header: no ports, one bucket for
// all of a datagram's fragments). The flow label is left out: a host may
// change it within a flow (RFC 6437 allows it on a path change).
func flowBucket6(pkt []byte, n int) uint8 {
	addrs := binary.BigEndian.Uint64(pkt[8:]) ^ binary.BigEndian.Uint64(pkt[16:])*0xc2b2ae3d27d4eb4f ^
		binary.BigEndian.Uint64(pkt[24:])*0x165667b19e3779f9 ^ binary.BigEndian.Uint64(pkt[32:])*0x27d4eb2f165667c5
	proto := pkt[ipv6NextHeaderOff]
	var ports uint32
	if len(pkt) >= ipv6HeaderLen+4 && (proto == protoTCP || proto == protoUDP || proto == protoSCTP) {
		ports = binary.BigEndian.Uint32(pkt[ipv6HeaderLen:])
	}
	return bucketOf(addrs^(uint64(ports)<<8|uint64(proto))*0x9e3779b97f4a7c15, n)
}

// bucketOf mixes h (murmur3's finaliser) and maps it onto n buckets.
func bucketOf(h uint64, n int) uint8 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	return uint8((h & 0xffffffff) * uint64(n) >> 32)
}
