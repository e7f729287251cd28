package overlay

import (
	"fmt"
	"net/netip"
	"sync/atomic"
)

// The TUN->UDP direction runs as a two-stage pipeline: a reader goroutine
// fills a batch (TUN read + encap) while a sender goroutine sends the previous
// ones (sendmmsg), so the two syscalls overlap. Batches are preallocated and
// circulate between a free and a full channel of pointers (no allocation per
// packet or per batch). Both channels are FIFO and there is one goroutine per
// stage, so packets leave in the order they arrived. A sender that finds
// several full batches waiting sends them in one sendmmsg, which batches the
// small packets that the TUN delivers one per read.
//
// The UDP->TUN direction stays one loop: pipelining it too (recvmmsg+decap
// in one goroutine, GRO TUN write in another) measured ~10% slower for
// single-stream TCP on two cores and gained nothing for small packets.

// txBatches is the number of TUN->UDP batches in flight.
const txBatches = 4

// directSendMax is the largest batch (packets read) that the reader sends
// itself when the sender is idle and nothing is queued. Handing a lone
// packet to an idle sender costs a goroutine wakeup (a futex and, on a VM,
// an IPI) on every packet of a quiet flow. A batch this small also means the
// TUN ran dry after its first packet, so the reader is not the bottleneck
// and sending inline costs no throughput; larger batches (a TSO superpacket,
// a flood) still go through the pipeline so the two syscalls overlap.
const directSendMax = 1

// runTX is the TUN->UDP worker of one queue: it returns when reading its TUN queue stops.
func (q *queue) runTX() error {
	free := make(chan *txPath, len(q.txRing))
	full := make(chan *txPath, len(q.txRing))
	for _, p := range q.txRing {
		free <- p
	}
	// queued counts batches handed to the sender and not yet sent: only the
	// reader adds, only the sender subtracts (after its send), so when the
	// reader sees 0 the sender is idle and no older packet can still be on
	// its way out, and the reader may use q.send itself without reordering.
	var queued atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		q.sendTX(free, full, &queued)
	}()
	err := q.readTX(free, full, &queued)
	close(full)
	<-done
	return err
}

// readTX reads and encapsulates batches until the TUN read fails. Small
// batches are sent inline when the sender is idle (see directSendMax).
func (q *queue) readTX(free <-chan *txPath, full chan<- *txPath, queued *atomic.Int32) error {
	var directTally batchTally
	var p *txPath
	for {
		if p == nil {
			p = <-free
		}
		n, malformed, err := q.tun.Read(p.bufs, p.sizes, p.partial, p.tails)
		for range malformed {
			p.tally.drop(DropTruncated)
		}
		if err != nil {
			if isStopError(err) {
				return nil
			}
			return fmt.Errorf("read TUN: %w", err)
		}
		p.read = n
		if q.aqm != nil && q.aqm.onRead(q.emptier.FoundEmpty()) {
			p.signalCongestion(n)
		}
		p.out = p.encapBatch(n)
		p.aqmDrop = -1
		if n <= directSendMax && queued.Load() == 0 {
			if err := q.send.send(p.pkts[:p.out], p.ptails[:p.out], p.dsts[:p.out], p.buckets[:p.out], &directTally); err != nil {
				q.log.Debug("UDP send", "err", err)
			}
			q.txStat.flush(&p.tally, p.read)
			q.txStat.flush(&directTally, 0)
			continue
		}
		queued.Add(1)
		full <- p
		p = nil
	}
}

// sendTX sends full batches (several at once when they queue up) and
// returns them to free, until full is closed.
func (q *queue) sendTX(free chan<- *txPath, full <-chan *txPath, queued *atomic.Int32) {
	group := make([]*txPath, 0, cap(full))
	pkts := make([][]byte, 0, cap(full)*batchSize)
	tails := make([][]byte, 0, cap(full)*batchSize)
	dsts := make([]netip.AddrPort, 0, cap(full)*batchSize)
	buckets := make([]uint8, 0, cap(full)*batchSize)
	var sendTally batchTally
	for p := range full {
		group = append(group[:0], p)
		group = gatherTX(group, full)
		pkts, tails, dsts, buckets = pkts[:0], tails[:0], dsts[:0], buckets[:0]
		for _, b := range group {
			pkts = append(pkts, b.pkts[:b.out]...)
			tails = append(tails, b.ptails[:b.out]...)
			dsts = append(dsts, b.dsts[:b.out]...)
			buckets = append(buckets, b.buckets[:b.out]...)
		}
		if err := q.send.send(pkts, tails, dsts, buckets, &sendTally); err != nil {
			q.log.Debug("UDP send", "err", err)
		}
		for _, b := range group {
			q.txStat.flush(&b.tally, b.read)
			free <- b
		}
		q.txStat.flush(&sendTally, 0)
		queued.Add(-int32(len(group)))
	}
}

// gatherTX appends the batches already waiting in full, without blocking.
func gatherTX(group []*txPath, full <-chan *txPath) []*txPath {
	for len(group) < cap(group) {
		select {
		case q, ok := <-full:
			if !ok {
				return group
			}
			group = append(group, q)
		default:
			return group
		}
	}
	return group
}

// runRX is the UDP->TUN worker of one queue: one loop (receive, decap, TUN write;
// TCP runs written as GSO superpackets by tundev).
func (q *queue) runRX() error {
	p := q.rx
	for {
		n, err := q.udp.ReadBatch(p.bufs, p.views, p.srcs)
		if err != nil {
			if isStopError(err) {
				return nil
			}
			return fmt.Errorf("receive UDP: %w", err)
		}
		p.read = n
		p.out = p.decapBatch(n)
		if p.out > 0 {
			failed, err := q.tun.Write(p.writes[:p.out], p.partial)
			for range failed {
				p.tally.drop(DropTUNWriteError)
			}
			if err != nil {
				if isStopError(err) {
					return nil
				}
				return err
			}
		}
		q.rxStat.flush(&p.tally, n)
	}
}
