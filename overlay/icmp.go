package overlay

import (
	"encoding/binary"
	"time"
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
	buf     []byte   // bufOffset headroom + up to 576 bytes of ICMP error
	bufs    [][]byte // one-element batch view of buf, reused
	bucket  tokenBucket
	sent    uint64
	limited uint64
}

func newICMPResponder(w packetInjector) *icmpResponder {
	r := &icmpResponder{
		w:      w,
		buf:    make([]byte, bufOffset+576),
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
