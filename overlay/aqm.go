package overlay

import (
	"fmt"
	"math"
	"time"
)

// AQM configures CoDel on each TUN queue (Config.AQM); a zero Target turns it off.
type AQM struct {
	// Target is the standing delay tolerated: how long the TUN queue may
	// stay non-empty before CoDel starts counting.
	Target time.Duration
	// Interval is how long it must stay above Target before the first
	// drop (or CE mark), and the base of the control law after it; about
	// the round trip of the flows it should slow down.
	Interval time.Duration
}

// Bounds of AQM's settings.
const (
	MinAQMTarget   = 50 * time.Microsecond
	MaxAQMTarget   = 100 * time.Millisecond
	MaxAQMInterval = 10 * time.Second
)

// Check validates the settings.
func (a AQM) Check() error {
	if a.Target == 0 {
		return nil
	}
	if a.Target < MinAQMTarget || a.Target > MaxAQMTarget {
		return fmt.Errorf("AQM target %v: must be 0 (off) or between %v and %v", a.Target, MinAQMTarget, MaxAQMTarget)
	}
	if a.Interval < a.Target || a.Interval > MaxAQMInterval {
		return fmt.Errorf("AQM interval %v: must be between the target (%v) and %v", a.Interval, a.Target, MaxAQMInterval)
	}
	return nil
}

// codel is CoDel (RFC 8289) on a TUN queue weft cannot timestamp: the
// sojourn time is how long the queue has not been found empty (a read that
// got EAGAIN), as the issue suggests. Once that has stayed above target for
// an interval, one TCP data segment of a batch is dropped (or, when it is
// ECN-capable, marked CE), then again at interval/sqrt(count) while it
// stays above. Not safe for concurrent use: one per TX reader.
type codel struct {
	target, interval int64 // ns
	epoch            time.Time

	lastEmpty  int64 // when a read last found the queue empty
	firstAbove int64 // when the sojourn went above target + interval (0: below)
	dropping   bool
	count      int
	lastCount  int
	dropNext   int64
}

func newCodel(target, interval time.Duration) *codel {
	return &codel{target: int64(target), interval: int64(interval), epoch: time.Now()}
}

func (c *codel) controlLaw(t int64) int64 {
	return t + int64(float64(c.interval)/math.Sqrt(float64(c.count)))
}

// okToDrop judges the sojourn at now.
func (c *codel) okToDrop(now int64) bool {
	if now-c.lastEmpty < c.target {
		c.firstAbove = 0
		return false
	}
	if c.firstAbove == 0 {
		c.firstAbove = now + c.interval
		return false
	}
	return now >= c.firstAbove
}

// onRead is onReadAt now.
func (c *codel) onRead(foundEmpty bool) bool {
	return c.onReadAt(int64(time.Since(c.epoch)), foundEmpty)
}

// onReadAt is called after each read with whether the queue was found empty
// since the previous one; it says whether to drop (mark) a segment of this
// batch.
func (c *codel) onReadAt(now int64, foundEmpty bool) bool {
	if foundEmpty {
		c.lastEmpty = now
	}
	ok := c.okToDrop(now)
	if c.dropping {
		if !ok {
			c.dropping = false
			return false
		}
		if now >= c.dropNext {
			c.count++
			c.dropNext = c.controlLaw(c.dropNext)
			return true
		}
		return false
	}
	if !ok {
		return false
	}
	c.dropping = true
	delta := c.count - c.lastCount
	if delta > 1 && now-c.dropNext < 16*c.interval {
		c.count = delta
	} else {
		c.count = 1
	}
	c.lastCount = c.count
	c.dropNext = c.controlLaw(now)
	return true
}

// signalCongestion marks the first TCP data segment of the n packets read
// with CE when it is ECN-capable, or has encapBatch drop it.
func (p *txPath) signalCongestion(n int) {
	v := p.aqmVictim(n)
	switch {
	case v < 0:
	case p.markCE(v):
		p.tally.ceMarked++
	default:
		p.aqmDrop = v
	}
}

// aqmVictim returns the index of the first TCP segment with payload among
// the n packets read (IPv4 or IPv6 without extension headers), or -1.
func (p *txPath) aqmVictim(n int) int {
	for i := 0; i < n; i++ {
		size := p.sizes[i]
		head := size - len(p.tails[i])
		pkt := p.bufs[i][bufOffset : bufOffset+head]
		if len(pkt) < 20 {
			continue
		}
		switch pkt[0] >> 4 {
		case 4:
			ihl := int(pkt[0]&0x0f) * 4
			if pkt[9] != 6 || len(pkt) < ihl+20 {
				continue
			}
			doff := int(pkt[ihl+12]>>4) * 4
			if size > ihl+doff {
				return i
			}
		case 6:
			if len(pkt) < 60 || pkt[6] != 6 {
				continue
			}
			doff := int(pkt[40+12]>>4) * 4
			if size > 40+doff {
				return i
			}
		}
	}
	return -1
}

// markCE sets CE on packet i when it is ECN-capable (ECT(0) or ECT(1)) and
// says whether it did; IPv4's header checksum is updated.
func (p *txPath) markCE(i int) bool {
	pkt := p.bufs[i][bufOffset:]
	switch pkt[0] >> 4 {
	case 4:
		tos := pkt[1]
		if tos&3 == 0 || tos&3 == 3 {
			return tos&3 == 3
		}
		setHeaderWord(pkt, 0, uint16(pkt[0])<<8|uint16(tos|3)) // version, IHL and TOS
		return true
	case 6:
		tc := (pkt[0]&0x0f)<<4 | pkt[1]>>4
		if tc&3 == 0 || tc&3 == 3 {
			return tc&3 == 3
		}
		pkt[1] |= 0x30
		return true
	}
	return false
}
