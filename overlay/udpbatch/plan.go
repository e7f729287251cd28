// Package udpbatch is weft's UDP side: one IPv4 socket read and written in
// batches (recvmmsg/sendmmsg) with UDP GSO on send and UDP GRO on receive.
// The grouping of datagrams into GSO messages (Plan) and the split of GRO
// super-datagrams (SplitGRO) are pure functions, tested without a socket;
// the socket itself (conn_linux.go) is zero-allocation per call.
package udpbatch

import (
	"errors"
	"net/netip"
)

const (
	// MaxSegments is the kernel's limit of segments per UDP GSO send and per
	// UDP GRO receive (UDP_MAX_SEGMENTS).
	MaxSegments = 64
	// MaxPayload is the largest UDP payload in one IPv4 datagram.
	MaxPayload = 1<<16 - 1 - 20 - 8
)

// Message is one sendmmsg entry: Count datagrams starting at pkts[First],
// all to the destination of pkts[First]. With Count > 1 it is sent as one
// UDP GSO message of SegSize-byte segments (the last may be shorter).
type Message struct {
	First, Count, SegSize int
}

// Plan groups datagrams (datagram i is pkts[i] followed by tails[i]; tails
// may be nil) to dsts into messages, in order, and returns how many it wrote
// into msgs (which must hold len(pkts)). With gso, consecutive datagrams
// to the same destination share a message while each is no longer than the
// first, a shorter one ends the message, and the message stays within
// MaxSegments and MaxPayload. Without gso every datagram is its own message.
func Plan(pkts, tails [][]byte, dsts []netip.AddrPort, gso bool, msgs []Message) int {
	m := -1
	var total int
	var ended bool
	for i, p := range pkts {
		size := len(p)
		if tails != nil {
			size += len(tails[i])
		}
		if m >= 0 {
			cur := &msgs[m]
			if gso && !ended && dsts[i] == dsts[cur.First] && size <= cur.SegSize &&
				cur.Count < MaxSegments && total+size <= MaxPayload {
				cur.Count++
				total += size
				ended = size < cur.SegSize // a shorter segment must be the last one
				continue
			}
		}
		m++
		msgs[m] = Message{First: i, Count: 1, SegSize: size}
		total, ended = size, false
	}
	return m + 1
}

// ErrGROOverflow means the GRO super-datagrams received split into more
// datagrams than the caller has room for (ReadBatch sizes its reads so that
// this never happens).
var ErrGROOverflow = errors.New("udpbatch: splitting UDP GRO datagrams overflowed the batch")

// GROMessages is how many messages ReadBatch receives at once with GRO on
// when it may return up to n datagrams: each message may split into
// MaxSegments datagrams.
func GROMessages(n int) int {
	return max(1, n/MaxSegments)
}

// SplitGRO splits the count messages received into bufs (message j is
// bufs[j][:lens[j]] from from[j], with GRO segment size segs[j], 0 for
// none) into datagrams without copying: out[k] is a view of datagram k,
// srcs[k] its source. It returns how many. An empty message stays one
// (empty) datagram so that the caller counts it.
func SplitGRO(bufs [][]byte, lens, segs []int, from []netip.AddrPort, count int, out [][]byte, srcs []netip.AddrPort) (int, error) {
	k := 0
	for j := 0; j < count; j++ {
		n, seg := lens[j], segs[j]
		msg := bufs[j][:n]
		if seg <= 0 || seg >= n {
			seg = max(n, 1)
		}
		for start := 0; start < n || (n == 0 && start == 0); start += seg {
			if k == len(out) {
				return k, ErrGROOverflow
			}
			out[k] = msg[start:min(start+seg, n)]
			srcs[k] = from[j]
			k++
		}
	}
	return k, nil
}
