package tundev

import (
	"math/rand/v2"
	"testing"
)

// referenceChecksum is RFC 1071 in 16-bit words, the obvious way.
func referenceChecksum(b []byte) uint16 {
	var sum uint32
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = (sum & 0xffff) + (sum >> 16)
	}
	return ^uint16(sum)
}

func TestChecksumMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 70000)
	for round := range 4 {
		for i := range buf {
			switch round {
			case 0:
				buf[i] = byte(rng.Uint32())
			case 1:
				buf[i] = 0xff // carries everywhere
			case 2:
				buf[i] = 0
			default:
				buf[i] = byte(0xfe + i%2)
			}
		}
		for n := 0; n <= 300; n++ {
			for off := 0; off < 9; off++ {
				if got, want := Checksum(buf[off:off+n]), referenceChecksum(buf[off:off+n]); got != want {
					t.Fatalf("round %d, %d bytes at %d: %#04x, want %#04x", round, n, off, got, want)
				}
			}
		}
		for _, n := range []int{1400, 1401, 9000, 65535, 70000} {
			if got, want := Checksum(buf[:n]), referenceChecksum(buf[:n]); got != want {
				t.Fatalf("round %d, %d bytes: %#04x, want %#04x", round, n, got, want)
			}
		}
	}
}
