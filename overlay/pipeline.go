package overlay

import (
	"errors"
	"fmt"
	"net/netip"

	"golang.zx2c4.com/wireguard/tun"
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

// runTX is the TUN->UDP direction: it returns when reading the TUN stops.
func (o *Overlay) runTX() error {
	free := make(chan *txPath, len(o.txRing))
	full := make(chan *txPath, len(o.txRing))
	for _, p := range o.txRing {
		free <- p
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		o.sendTX(free, full)
	}()
	err := o.readTX(free, full)
	close(full)
	<-done
	return err
}

// readTX reads and encapsulates batches until the TUN read fails.
func (o *Overlay) readTX(free <-chan *txPath, full chan<- *txPath) error {
	for {
		p := <-free
		var n int
		var err error
		if o.tunIn != nil {
			n, err = o.tunIn.read(p)
		} else {
			clear(p.partial)
			n, err = o.dev.Read(p.bufs, p.sizes, bufOffset)
		}
		if err != nil {
			if isStopError(err) {
				return nil
			}
			if errors.Is(err, tun.ErrTooManySegments) {
				o.log.Warn("TUN read: too many segments", "err", err)
				p.read, p.out = 0, 0
				full <- p
				continue
			}
			return fmt.Errorf("read TUN: %w", err)
		}
		p.read = n
		p.out = p.encapBatch(n)
		full <- p
	}
}

// sendTX sends full batches (several at once when they queue up) and
// returns them to free, until full is closed.
func (o *Overlay) sendTX(free chan<- *txPath, full <-chan *txPath) {
	group := make([]*txPath, 0, cap(full))
	pkts := make([][]byte, 0, cap(full)*batchSize)
	dsts := make([]netip.AddrPort, 0, cap(full)*batchSize)
	var sendTally batchTally
	for p := range full {
		group = append(group[:0], p)
		group = gatherTX(group, full)
		pkts, dsts = pkts[:0], dsts[:0]
		for _, q := range group {
			pkts = append(pkts, q.pkts[:q.out]...)
			dsts = append(dsts, q.dsts[:q.out]...)
		}
		if err := o.send.send(pkts, dsts, &sendTally); err != nil {
			o.log.Debug("UDP send", "err", err)
		}
		for _, q := range group {
			o.txStat.flush(&q.tally, q.read)
			free <- q
		}
		o.txStat.flush(&sendTally, 0)
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

// runRX is the UDP->TUN direction: one loop (receive, decap, TUN write;
// TCP runs written as GSO superpackets, see tunwriter.go).
func (o *Overlay) runRX() error {
	p := o.rx
	for {
		n, err := o.recv.receive(p.views, p.sizes, p.srcs)
		if err != nil {
			if isStopError(err) {
				return nil
			}
			return fmt.Errorf("receive UDP: %w", err)
		}
		p.read = n
		p.out = p.decapBatch(n)
		if p.out > 0 {
			if err := o.tunOut.write(p.writes[:p.out], p.partial, &p.tally); err != nil {
				if isStopError(err) {
					return nil
				}
				return err
			}
		}
		o.rxStat.flush(&p.tally, n)
	}
}
