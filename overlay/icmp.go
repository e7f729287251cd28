package overlay

import (
	"encoding/binary"
	"time"

	"github.com/weftnet/weft/overlay/tundev"
)

const (
	icmpHeaderLen         = 8
	icmpTypeDestUnreach   = 3
	icmpCodeNetUnreach    = 0
	icmpCodeFragNeeded    = 4
	icmpMaxQuote          = 576 - ipv4HeaderLen - icmpHeaderLen // RFC 1812 4.3.2.3
	icmpRatePerSecond     = 200
	icmpBurst             = 50
	icmpDefaultTTL        = 64
	icmpTOSInternetworkCt = 0xc0

	icmpv6TypeDestUnreach  = 1
	icmpv6CodeNoRoute      = 0
	icmpv6TypePacketTooBig = 2
	icmpv6HopLimit         = 64
	// icmpv6MaxPacket is the largest ICMPv6 error: the IPv6 minimum MTU
	// (RFC 4443 2.4 (c)).
	icmpv6MaxPacket = ipv6MinMTU
)

// packetInjector writes locally generated IPv4 packets, each at
// bufs[i][offset:], into the TUN device (tunDevice has this method).
type packetInjector interface {
	Inject(bufs [][]byte, offset int) (int, error)
}

// icmpResponder builds ICMP destination-unreachable errors in one preallocated
// buffer and writes them back into the TUN, rate-limited. Owned by the TX loop.
type icmpResponder struct {
	w       packetInjector
	buf     []byte   // bufOffset headroom + up to 1280 bytes of ICMP(v6) error
	bufs    [][]byte // one-element batch view of buf, reused
	bucket  tokenBucket
	sent    uint64
	limited uint64
}

func newICMPResponder(w packetInjector) *icmpResponder {
	r := &icmpResponder{
		w:      w,
		buf:    make([]byte, bufOffset+icmpv6MaxPacket),
		bufs:   make([][]byte, 1),
		bucket: newTokenBucket(icmpRatePerSecond, icmpBurst),
	}
	return r
}

// reply sends an ICMP type 3 error with the given code about orig (an IPv4
// packet read from the TUN) back to orig's source, from address src.
// nextHopMTU is filled in for code 4. It returns whether a packet was written.
func (r *icmpResponder) reply(code byte, nextHopMTU int, src uint32, orig []byte) bool {
	if !r.bucket.allow(time.Now()) {
		r.limited++
		return false
	}
	n := buildDestUnreachable(r.buf[bufOffset:], code, nextHopMTU, src, orig)
	return r.inject(n)
}

// reply6 sends an ICMPv6 error of type and code (mtu for Packet Too Big)
// about orig (an IPv6 packet read from the TUN) back to orig's source, from
// the address srcHi:srcLo. It returns whether a packet was written.
func (r *icmpResponder) reply6(typ, code byte, mtu int, srcHi, srcLo uint64, orig []byte) bool {
	if !r.bucket.allow(time.Now()) {
		r.limited++
		return false
	}
	n := buildICMPv6Error(r.buf[bufOffset:], typ, code, mtu, srcHi, srcLo, orig)
	return r.inject(n)
}

// inject writes the n-byte packet built at r.buf[bufOffset:] into the TUN.
func (r *icmpResponder) inject(n int) bool {
	if n == 0 {
		return false
	}
	r.bufs[0] = r.buf[:bufOffset+n]
	if _, err := r.w.Inject(r.bufs, bufOffset); err != nil {
		return false
	}
	r.sent++
	return true
}

// buildDestUnreachable writes into out (at least 576 bytes) an IPv4 packet
// carrying an ICMP destination unreachable error about orig, from src to
// orig's source. It returns the packet length, or 0 if orig must not get an
// error (too short, or itself an ICMP error, or a non-first fragment).
func buildDestUnreachable(out []byte, code byte, nextHopMTU int, src uint32, orig []byte) int {
	if len(orig) < ipv4HeaderLen || orig[0]>>4 != 4 {
		return 0
	}
	ihl := int(orig[0]&0x0f) * 4
	if ihl < ipv4HeaderLen || ihl > len(orig) {
		return 0
	}
	if binary.BigEndian.Uint16(orig[6:])&0x1fff != 0 { // not the first fragment
		return 0
	}
	if orig[9] == protoICMP && len(orig) > ihl {
		switch orig[ihl] { // never answer an ICMP error with an ICMP error
		case 3, 4, 5, 11, 12:
			return 0
		}
	}
	quote := len(orig)
	if quote > icmpMaxQuote {
		quote = icmpMaxQuote
	}
	total := ipv4HeaderLen + icmpHeaderLen + quote
	if len(out) < total {
		return 0
	}
	ip := out[:ipv4HeaderLen]
	ip[0] = 0x45
	ip[1] = icmpTOSInternetworkCt
	binary.BigEndian.PutUint16(ip[2:], uint16(total))
	binary.BigEndian.PutUint32(ip[4:], 0) // id 0, no flags, no fragment offset
	ip[ipv4TTLOffset] = icmpDefaultTTL
	ip[9] = protoICMP
	binary.BigEndian.PutUint16(ip[ipv4CsumOff:], 0)
	binary.BigEndian.PutUint32(ip[ipv4SrcOffset:], src)
	copy(ip[ipv4DstOffset:ipv4DstOffset+4], orig[ipv4SrcOffset:ipv4SrcOffset+4])
	binary.BigEndian.PutUint16(ip[ipv4CsumOff:], checksum(ip))

	icmp := out[ipv4HeaderLen:total]
	icmp[0] = icmpTypeDestUnreach
	icmp[1] = code
	binary.BigEndian.PutUint16(icmp[2:], 0)
	binary.BigEndian.PutUint16(icmp[4:], 0)
	mtu := 0
	if code == icmpCodeFragNeeded {
		mtu = nextHopMTU
	}
	binary.BigEndian.PutUint16(icmp[6:], uint16(mtu))
	copy(icmp[icmpHeaderLen:], orig[:quote])
	binary.BigEndian.PutUint16(icmp[2:], checksum(icmp))
	return total
}

// buildICMPv6Error writes into out (at least icmpv6MaxPacket bytes) an IPv6
// packet carrying an ICMPv6 error (RFC 4443) of type and code about orig,
// from srcHi:srcLo to orig's source: for Packet Too Big the MTU field is
// mtu. It quotes as much of orig as fits 1280 bytes. It returns the packet
// length, or 0 if orig must not get an error (too short, not IPv6, itself an
// ICMPv6 error, or from an unspecified or multicast source, RFC 4443 2.4 (e)).
func buildICMPv6Error(out []byte, typ, code byte, mtu int, srcHi, srcLo uint64, orig []byte) int {
	if len(orig) < ipv6HeaderLen || orig[0]>>4 != 6 {
		return 0
	}
	if s := orig[ipv6SrcOffset : ipv6SrcOffset+16]; s[0] == 0xff || isZero16(s) {
		return 0
	}
	if orig[ipv6NextHeaderOff] == protoICMPv6 && (len(orig) <= ipv6HeaderLen || orig[ipv6HeaderLen] < 128) {
		return 0 // never answer an ICMPv6 error (types 0-127) with one
	}
	quote := min(len(orig), icmpv6MaxPacket-ipv6HeaderLen-icmpHeaderLen)
	total := ipv6HeaderLen + icmpHeaderLen + quote
	if len(out) < total {
		return 0
	}
	ip := out[:ipv6HeaderLen]
	binary.BigEndian.PutUint32(ip[0:], 6<<28) // version 6, traffic class 0, flow label 0
	binary.BigEndian.PutUint16(ip[ipv6PayloadLenOff:], uint16(icmpHeaderLen+quote))
	ip[ipv6NextHeaderOff] = protoICMPv6
	ip[ipv6HopLimitOff] = icmpv6HopLimit
	binary.BigEndian.PutUint64(ip[ipv6SrcOffset:], srcHi)
	binary.BigEndian.PutUint64(ip[ipv6SrcOffset+8:], srcLo)
	copy(ip[ipv6DstOffset:ipv6DstOffset+16], orig[ipv6SrcOffset:ipv6SrcOffset+16])

	icmp := out[ipv6HeaderLen:total]
	icmp[0] = typ
	icmp[1] = code
	binary.BigEndian.PutUint32(icmp[4:], 0)
	if typ == icmpv6TypePacketTooBig {
		binary.BigEndian.PutUint32(icmp[4:], uint32(mtu))
	}
	copy(icmp[icmpHeaderLen:], orig[:quote])
	// The checksum field first holds the pseudo-header sum; the checksum
	// of the message with it in place is then the full checksum.
	binary.BigEndian.PutUint16(icmp[2:], ipv6PseudoHeaderSum(ip, protoICMPv6, len(icmp)))
	binary.BigEndian.PutUint16(icmp[2:], checksum(icmp))
	return total
}

// ipv6PseudoHeaderSum is the folded (not complemented) one's complement sum
// of the IPv6 pseudo-header (RFC 8200 8.1) of an upper-layer packet of
// l4Len bytes with next header proto in the IPv6 packet ip.
func ipv6PseudoHeaderSum(ip []byte, proto byte, l4Len int) uint16 {
	return tundev.PseudoHeaderSumIPv6(ip, proto, l4Len)
}

func isZero16(b []byte) bool {
	return binary.BigEndian.Uint64(b) == 0 && binary.BigEndian.Uint64(b[8:]) == 0
}
