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
	addrs := binary.BigEndian.Uint64(pkt[12:20])
	proto := pkt[9]
	var ports uint32
	ihl := int(pkt[0]&0x0f) * 4
	fragment := binary.BigEndian.Uint16(pkt[6:8])&0x3fff != 0 // MF or an offset
	if !fragment && len(pkt) >= ihl+4 && (proto == protoTCP || proto == protoUDP || proto == protoSCTP) {
		ports = binary.BigEndian.Uint32(pkt[ihl:])
	}
	h := addrs ^ (uint64(ports)<<8|uint64(proto))*0x9e3779b97f4a7c15
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	return uint8((h & 0xffffffff) * uint64(n) >> 32)
}
