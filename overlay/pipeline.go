package overlay

import (
	"errors"
	"fmt"
	"net/netip"

	"golang.zx2c4.com/wireguard/tun"
)

// Each direction runs as a two-stage pipeline: a reader goroutine fills a
// batch (TUN read + encap, or recvmmsg + decap) while a writer goroutine
// sends the previous one (sendmmsg, or TUN write), so the two syscalls of a
// direction overlap. Batches are preallocated and circulate between a free
// and a full channel of pointers (no allocation per packet or per batch).
// Both channels are FIFO and there is one goroutine per stage, so packets
// leave in the order they arrived. A writer that finds several full batches
// waiting hands them to the kernel together (one sendmmsg or one GRO TUN
// write), which batches small packets that the TUN delivers one per read.
const (
	// txBatches and rxBatches are the batches in flight per direction.
	txBatches = 4
	rxBatches = 3
)

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
		n, err := o.dev.Read(p.bufs, p.sizes, bufOffset)
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

// runRX is the UDP->TUN direction: it returns when receiving stops.
func (o *Overlay) runRX() error {
	free := make(chan *rxPath, len(o.rxRing))
	full := make(chan *rxPath, len(o.rxRing))
	for _, p := range o.rxRing {
		free <- p
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		o.writeRX(free, full)
	}()
	err := o.readRX(free, full)
	close(full)
	<-done
	return err
}

// readRX receives and decapsulates batches until the socket read fails.
func (o *Overlay) readRX(free <-chan *rxPath, full chan<- *rxPath) error {
	for {
		p := <-free
		n, err := o.recv.receive(p.views, p.sizes, p.srcs)
		if err != nil {
			if isStopError(err) {
				return nil
			}
			return fmt.Errorf("receive UDP: %w", err)
		}
		p.read = n
		p.out = p.decapBatch(n)
		full <- p
	}
}

// writeRX writes full batches into the TUN (several at once when they queue
// up, so the TUN's GRO can coalesce across them) and returns them to free,
// until full is closed. Write errors are counted, never fatal: the reader
// decides when the direction stops.
func (o *Overlay) writeRX(free chan<- *rxPath, full <-chan *rxPath) {
	group := make([]*rxPath, 0, cap(full))
	writes := make([][]byte, 0, cap(full)*batchSize)
	for p := range full {
		group = append(group[:0], p)
		group = gatherRX(group, full)
		writes = writes[:0]
		for _, q := range group {
			writes = append(writes, q.writes[:q.out]...)
		}
		if len(writes) > 0 {
			if _, err := o.dev.Write(writes, bufOffset); err != nil {
				group[0].tally.drop(DropTUNWriteError)
				o.log.Debug("TUN write", "err", err)
			}
		}
		for _, q := range group {
			o.rxStat.flush(&q.tally, q.read)
			free <- q
		}
	}
}

// gatherRX appends the batches already waiting in full, without blocking.
func gatherRX(group []*rxPath, full <-chan *rxPath) []*rxPath {
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
