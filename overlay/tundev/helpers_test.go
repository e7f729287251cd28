package tundev

import "encoding/binary"

// batchSize is the batch the forwarding loops use.
const batchSize = 128

func newBuffers(n int) [][]byte {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, BufSize)
	}
	return bufs
}

// putUDP writes a valid IPv4/UDP packet of total length n (10.244.1.5 ->
// 10.244.2.9) into b.
func putUDP(b []byte, n int) []byte {
	p := b[:n]
	clear(p)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(n))
	p[8] = 64
	p[9] = protoUDP
	copy(p[12:20], []byte{10, 244, 1, 5, 10, 244, 2, 9})
	binary.BigEndian.PutUint16(p[10:], Checksum(p[:20]))
	return p
}
