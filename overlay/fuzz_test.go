package overlay

import (
	"net/netip"
	"testing"
)

func FuzzDecap(f *testing.F) {
	f.Add(datagram(60, "10.244.2.5", "10.244.1.9", 64), []byte{192, 0, 2, 2}, uint16(8285))
	f.Add(datagram(20, "10.244.3.5", "10.244.1.9", 1), []byte{192, 0, 2, 3}, uint16(8285))
	f.Add([]byte{headerMagic, headerVersion, typeData, 0, 0x4f, 0, 0, 24}, []byte{192, 0, 2, 2}, uint16(8285))
	f.Add([]byte{headerMagic}, []byte{1, 2, 3, 4}, uint16(1))
	f.Add([]byte{}, []byte{}, uint16(0))
	f.Add([]byte{0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 244, 2, 5, 10, 244, 1, 9}, []byte{192, 0, 2, 2}, uint16(8285))
	// IPv6 inner packets (the table is dual-stack).
	f.Add(datagram6(100, "fd10:244:0:2::5", "fd10:244:0:1::9", 64), []byte{192, 0, 2, 2}, uint16(8285))
	f.Add(datagram6(40, "fd10:244:0:3::5", "fd10:244:0:1::9", 1), []byte{192, 0, 2, 3}, uint16(8286))
	f.Add(datagram6(60, "2001:db8::2", "fd10:244:0:1::9", 64), netip.MustParseAddr("2001:db8::2").AsSlice(), uint16(8285))
	f.Add([]byte{headerMagic, headerVersion, typeData, flagL4Partial, 0x60, 0, 0, 0, 0, 20, 6, 64}, []byte{192, 0, 2, 2}, uint16(8285))
	tab := newDualTable(f)
	p := newRXPath(tab, testLocal, testLocal6, DefaultSourcePorts)
	f.Fuzz(func(t *testing.T, d []byte, srcIP []byte, port uint16) {
		var src netip.AddrPort
		if a, ok := netip.AddrFromSlice(srcIP); ok {
			src = netip.AddrPortFrom(a, port)
		}
		n, r := p.decap(d, src)
		if r == notDropped {
			inner := d[HeaderLen:]
			if n != len(inner) || n < ipv4HeaderLen {
				t.Fatalf("accepted with inner length %d of %d", n, len(d))
			}
			if inner[0]>>4 == 6 {
				hi, lo := ipv6Src(inner)
				peer := tab.LookupIPv6(hi, lo)
				fromPeer := peer != nil && p.fromEndpoint(peer.Endpoint, src)
				if checkInnerIPv6(inner) != notDropped || !fromPeer && uint128ToAddr(hi, lo) != src.Addr() {
					t.Fatal("accepted an invalid or spoofed inner IPv6 packet")
				}
				if !testLocal6.Contains(uint128ToAddr(ipv6Dst(inner))) {
					t.Fatal("accepted an IPv6 packet for another subnet")
				}
			} else if checkInnerIPv4(inner) != notDropped {
				t.Fatal("accepted an invalid inner packet")
			}
		} else if r < 0 || int(r) >= NumDropReasons {
			t.Fatalf("reason %d out of range", r)
		}
	})
}
