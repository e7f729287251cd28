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

// ErrGROOverflow means a GRO super-datagram would split into more datagrams
// than the batch has room for (ReadBatch sizes its reads so this never happens).
var ErrGROOverflow = errors.New("udpbatch: splitting a UDP GRO datagram overflowed the batch")

// GROReadStart returns the index at which ReadBatch reads messages into n
// views when GRO is on: each message may split into MaxSegments datagrams,
// and SplitGRO spreads them forward from index 0, so reading only into the
// tail guarantees that splitting never overwrites an unread message.
func GROReadStart(n int) int {
	return n - max(1, n/MaxSegments)
}

// SplitGRO splits the count messages received into views[from:from+count]
// (lengths in sizes, sources in srcs, GRO segment sizes in segs, 0 for none)
// into one datagram per view starting at views[0], and returns how many. An
// empty message stays one (empty) datagram so that the caller counts it.
func SplitGRO(views [][]byte, sizes []int, srcs []netip.AddrPort, segs []int, from, count int) (int, error) {
	out := 0
	for i := from; i < from+count; i++ {
		n, src, seg := sizes[i], srcs[i], segs[i]
		if n == 0 {
			sizes[out], srcs[out] = 0, src
			out++
			continue
		}
		if seg <= 0 || seg >= n {
			seg = n
		}
		for start := 0; start < n; start += seg {
			if out > i {
				return out, ErrGROOverflow
			}
			end := min(start+seg, n)
			sizes[out] = copy(views[out], views[i][start:end])
			srcs[out] = src
			out++
		}
	}
	return out, nil
}
