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
	tab := newTestTable(f)
	p := newRXPath(tab, testLocal, DefaultSourcePorts)
	f.Fuzz(func(t *testing.T, d []byte, srcIP []byte, port uint16) {
		var src netip.AddrPort
		if a, ok := netip.AddrFromSlice(srcIP); ok {
			src = netip.AddrPortFrom(a, port)
		}
		n, r := p.decap(d, src)
		if r == notDropped {
			if n != len(d)-HeaderLen || n < ipv4HeaderLen {
				t.Fatalf("accepted with inner length %d of %d", n, len(d))
			}
			if checkInnerIPv4(d[HeaderLen:]) != notDropped {
				t.Fatal("accepted an invalid inner packet")
			}
		} else if r < 0 || int(r) >= NumDropReasons {
			t.Fatalf("reason %d out of range", r)
		}
	})
}
