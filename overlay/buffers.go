package overlay

import (
	"golang.zx2c4.com/wireguard/conn"

	"github.com/weftnet/weft/overlay/tundev"
)

const (
	// bufOffset is where an inner packet starts in every packet buffer. The
	// weft header sits right before it at [bufOffset-HeaderLen, bufOffset), so
	// a UDP datagram is buf[bufOffset-HeaderLen : bufOffset+len(inner)] without
	// copying; the TUN writes its 10-byte virtio-net header into
	// [bufOffset-10, bufOffset) on the way in (after the weft header was read).
	bufOffset = tundev.Headroom
	// bufSize holds the largest IP packet / UDP GRO super-datagram plus headroom
	// (the TUN also coalesces GRO writes into the first buffer of a flow).
	bufSize = tundev.BufSize
	// batchSize is how many packets one loop handles per TUN read/write or
	// recvmmsg/sendmmsg.
	batchSize = conn.IdealBatchSize
)

// newBuffers allocates n packet buffers of bufSize bytes each, once.
func newBuffers(n int) [][]byte {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, bufSize)
	}
	return bufs
}
