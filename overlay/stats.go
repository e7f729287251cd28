package overlay

import "sync/atomic"

// batchSizeBounds are the inclusive upper bounds of the batch-size histogram
// buckets: a batch of n packets is counted in the first bucket whose bound is
// >= n. The last bound is the largest batch the loops ever handle.
var batchSizeBounds = [...]int{1, 2, 4, 8, 16, 32, 64, batchSize}

const numBatchBuckets = len(batchSizeBounds)

// BatchSizeBuckets returns the upper bounds (inclusive) of the batch-size
// histogram buckets in DirStats.BatchSizes: 1, 2, 4, ..., 64, 128.
func BatchSizeBuckets() []int {
	b := make([]int, numBatchBuckets)
	copy(b, batchSizeBounds[:])
	return b
}

// DirStats are the counters of one direction.
type DirStats struct {
	Packets uint64 // packets forwarded
	Bytes   uint64 // inner IPv4 bytes forwarded
	Batches uint64 // non-empty batches handled
	// BatchSizes is a histogram of packets per batch (before drops);
	// BatchSizes[i] counts batches of size <= BatchSizeBuckets()[i] and
	// > BatchSizeBuckets()[i-1].
	BatchSizes [numBatchBuckets]uint64
	Drops      [NumDropReasons]uint64 // dropped packets by DropReason
	// CEMarked counts ECN-capable packets the AQM marked CE instead of
	// dropping them (forwarded, and counted in Packets too).
	CEMarked uint64
}

// Stats is a snapshot of both directions: TX is TUN->UDP, RX is UDP->TUN.
type Stats struct {
	TX, RX DirStats
}

// dirCounters are the live counters of one direction. Each loop accumulates a
// batch in a local batchTally and adds it here once per batch.
type dirCounters struct {
	packets, bytes, batches atomic.Uint64
	batchSizes              [numBatchBuckets]atomic.Uint64
	drops                   [NumDropReasons]atomic.Uint64
	ceMarked                atomic.Uint64
}

// batchTally is the per-batch scratch of one loop (owned by one goroutine).
type batchTally struct {
	packets, bytes uint64
	drops          [NumDropReasons]uint32
	anyDrop        bool
	ceMarked       uint64
}

func (t *batchTally) drop(r DropReason) {
	t.drops[r]++
	t.anyDrop = true
}

// flush adds a batch of size n (packets handled, before drops) to c and resets t.
func (c *dirCounters) flush(t *batchTally, n int) {
	if n > 0 {
		c.batches.Add(1)
		c.batchSizes[batchBucket(n)].Add(1)
	}
	if t.packets > 0 {
		c.packets.Add(t.packets)
		c.bytes.Add(t.bytes)
	}
	if t.anyDrop {
		for r, k := range t.drops {
			if k > 0 {
				c.drops[r].Add(uint64(k))
			}
		}
		t.drops = [NumDropReasons]uint32{}
	}
	if t.ceMarked > 0 {
		c.ceMarked.Add(t.ceMarked)
		t.ceMarked = 0
	}
	t.packets, t.bytes, t.anyDrop = 0, 0, false
}

func batchBucket(n int) int {
	for i, b := range batchSizeBounds {
		if n <= b {
			return i
		}
	}
	return numBatchBuckets - 1
}

func (c *dirCounters) snapshot() DirStats {
	var s DirStats
	s.Packets = c.packets.Load()
	s.Bytes = c.bytes.Load()
	s.Batches = c.batches.Load()
	for i := range c.batchSizes {
		s.BatchSizes[i] = c.batchSizes[i].Load()
	}
	for i := range c.drops {
		s.Drops[i] = c.drops[i].Load()
	}
	s.CEMarked = c.ceMarked.Load()
	return s
}
