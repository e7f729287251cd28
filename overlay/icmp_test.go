package overlay

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

func TestBuildDestUnreachable(t *testing.T) {
	orig := make([]byte, 1000)
	putIPv4(orig, 1000, "10.244.1.5", "10.244.99.1", 64)
	src := addrToUint32(netip.MustParseAddr("10.244.99.0"))
	for _, c := range []struct {
		code byte
		mtu  int
	}{{icmpCodeNetUnreach, 0}, {icmpCodeFragNeeded, 1468}} {
		out := make([]byte, 576)
		n := buildDestUnreachable(out, c.code, c.mtu, src, orig)
		if n != 576 {
			t.Fatalf("length %d, want 576 (quote capped)", n)
		}
		pkt := out[:n]
		if checksum(pkt[:20]) != 0 {
			t.Fatal("IP header checksum invalid")
		}
		if checksum(pkt[20:]) != 0 {
			t.Fatal("ICMP checksum invalid")
		}
		if checkInnerIPv4(pkt) != notDropped || pkt[9] != protoICMP {
			t.Fatal("not a valid IPv4 ICMP packet")
		}
		if ipv4Src(pkt) != src || netip.AddrFrom4([4]byte(pkt[16:20])) != netip.MustParseAddr("10.244.1.5") {
			t.Fatal("addresses wrong")
		}
		if pkt[20] != 3 || pkt[21] != c.code || int(binary.BigEndian.Uint16(pkt[26:])) != c.mtu {
			t.Fatalf("icmp header % x", pkt[20:28])
		}
		if string(pkt[28:48]) != string(orig[:20]) {
			t.Fatal("original header not quoted")
		}
	}
	small := make([]byte, 28)
	putIPv4(small, 28, "10.244.1.5", "10.244.99.1", 64)
	out := make([]byte, 576)
	if n := buildDestUnreachable(out, 0, 0, src, small); n != 56 || checksum(out[20:n]) != 0 {
		t.Fatalf("short original: n=%d", n)
	}
}

func TestBuildDestUnreachableRefuses(t *testing.T) {
	out := make([]byte, 576)
	icmpErr := make([]byte, 56)
	putIPv4(icmpErr, 56, "10.244.1.5", "10.244.99.1", 64)
	icmpErr[9] = protoICMP
	icmpErr[20] = 3
	if buildDestUnreachable(out, 0, 0, 1, icmpErr) != 0 {
		t.Fatal("answered an ICMP error with an ICMP error")
	}
	frag := make([]byte, 56)
	putIPv4(frag, 56, "10.244.1.5", "10.244.99.1", 64)
	binary.BigEndian.PutUint16(frag[6:], 10)
	if buildDestUnreachable(out, 0, 0, 1, frag) != 0 {
		t.Fatal("answered a non-first fragment")
	}
	if buildDestUnreachable(out, 0, 0, 1, []byte{0x45, 0}) != 0 {
		t.Fatal("answered a truncated packet")
	}
}

func TestTokenBucket(t *testing.T) {
	b := newTokenBucket(10, 2)
	var now = testTime(0)
	if !b.allow(now) || !b.allow(now) || b.allow(now) {
		t.Fatal("burst of 2 not enforced")
	}
	if !b.allow(testTime(100)) { // 100ms later: one token back
		t.Fatal("no refill")
	}
	if b.allow(testTime(100)) {
		t.Fatal("refilled too much")
	}
}
