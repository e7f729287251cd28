package overlay

import (
	"testing"
	"time"

	"github.com/weftnet/weft/overlay/tuntest"
)

const ms = int64(time.Millisecond)

func TestCodelDropsOnlyAfterAnIntervalAboveTarget(t *testing.T) {
	c := newCodel(200*time.Microsecond, 2*time.Millisecond)
	// A queue found empty every 100 us: never a drop.
	for now := int64(0); now < 50*ms; now += ms / 10 {
		if c.onReadAt(now, true) {
			t.Fatalf("dropped at %d ns with the queue found empty at every read", now)
		}
	}
	// Never empty from 50 ms on: the first drop once the sojourn has been
	// above target for an interval (50 + 0.2 + 2 ms).
	var drops []int64
	for now := 50*ms + ms/10; now < 80*ms; now += ms / 10 {
		if c.onReadAt(now, false) {
			drops = append(drops, now)
		}
	}
	if len(drops) < 3 || drops[0] < 52*ms || drops[0] > 53*ms {
		t.Fatalf("drops at %v, want the first near 52.2 ms and more after", drops)
	}
	// The control law: gaps shrink as interval/sqrt(count).
	for i := 2; i < len(drops); i++ {
		if drops[i]-drops[i-1] > drops[i-1]-drops[i-2]+ms/10 {
			t.Fatalf("gaps grew: %v", drops)
		}
	}
	// Found empty again: dropping stops at once.
	if c.onReadAt(80*ms, true) || c.onReadAt(80*ms+ms/10, false) {
		t.Fatal("dropped right after the queue was found empty")
	}
}

func TestAQMVictimIsATCPDataSegment(t *testing.T) {
	p, _ := newTestTX(t)
	putIPv4(p.bufs[0][bufOffset:], 100, "10.244.1.5", "10.244.2.9", 64) // UDP
	p.sizes[0] = 100
	putTCPPacket(p.bufs[1][bufOffset:], 40, "10.244.1.5", "10.244.2.9") // pure ACK
	p.sizes[1] = 40
	putTCPPacket(p.bufs[2][bufOffset:], 1000, "10.244.1.5", "10.244.2.9") // data
	p.sizes[2] = 1000
	if v := p.aqmVictim(3); v != 2 {
		t.Fatalf("victim %d, want 2 (the only TCP segment with payload)", v)
	}
	if v := p.aqmVictim(2); v != -1 {
		t.Fatalf("victim %d among a UDP packet and an ACK, want none", v)
	}
	p.aqmDrop = 2
	if out := p.encapBatch(3); out != 2 || p.tally.drops[DropQueueDelay] != 1 {
		t.Fatalf("encapBatch with a victim sent %d, queue_delay drops %d; want 2 and 1", out, p.tally.drops[DropQueueDelay])
	}
}

func TestMarkCE(t *testing.T) {
	p, _ := newTestTX(t)
	pkt := putTCPPacket(p.bufs[0][bufOffset:], 1000, "10.244.1.5", "10.244.2.9")
	p.sizes[0] = 1000
	if p.markCE(0) {
		t.Fatal("marked a Not-ECT packet")
	}
	pkt[1] = 0x02 // ECT(0)
	pkt[10], pkt[11] = 0, 0
	cs := checksum(pkt[:20])
	pkt[10], pkt[11] = byte(cs>>8), byte(cs)
	if !p.markCE(0) || pkt[1]&3 != 3 {
		t.Fatalf("ECT(0) not marked CE: tos %#x", pkt[1])
	}
	if checksum(pkt[:20]) != 0 {
		t.Fatalf("IPv4 header checksum wrong after marking")
	}
}

// reportingTUN is a fake TUN queue that reports every read as finding it
// empty, or none.
type reportingTUN struct {
	*tuntest.TUN
	empty bool
}

func (t reportingTUN) FoundEmpty() bool { return t.empty }

// TestAQMDropsFromAQueueNeverFoundEmpty runs the TX loop with CoDel on: a
// TUN queue that is never found empty has TCP data segments dropped and
// counted as queue_delay (every packet accounted for, UDP never dropped);
// one found empty at every read has none.
func TestAQMDropsFromAQueueNeverFoundEmpty(t *testing.T) {
	for _, empty := range []bool{false, true} {
		r := startFakeRigWith(t, 1, func(c *Config) {
			c.AQM = AQM{Target: MinAQMTarget, Interval: 200 * time.Microsecond}
		}, func(tun *tuntest.TUN) tunDevice { return reportingTUN{tun, empty} })
		tcp := putTCPPacket(make([]byte, 1000), 1000, "10.244.1.5", "10.244.2.9")
		udp := putIPv4(make([]byte, 300), 300, "10.244.1.5", "10.244.2.9", 64)
		sent := 0
		send := func(k int) {
			for range k {
				r.tun.Send(tcp)
				r.tun.Send(udp)
				sent += 2
			}
			waitUntil(t, "the loop to take every packet", func() bool {
				st := r.o.Stats().TX
				return st.Packets+st.Drops[DropQueueDelay] == uint64(sent)
			})
		}
		if empty {
			// Long enough for many intervals: nothing may be dropped.
			for start := time.Now(); time.Since(start) < 20*time.Millisecond; {
				send(10)
			}
		} else {
			waitUntil(t, "a queue_delay drop", func() bool {
				send(10)
				return r.o.Stats().TX.Drops[DropQueueDelay] > 0
			})
		}
		st := r.o.Stats().TX
		drops := st.Drops[DropQueueDelay]
		switch {
		case empty && drops != 0:
			t.Fatalf("queue found empty at every read: %d queue_delay drops", drops)
		case !empty && drops > uint64(sent/2):
			t.Fatalf("%d queue_delay drops of %d packets, %d of them UDP: only TCP data may be dropped", drops, sent, sent/2)
		}
		r.stop()
		<-r.done
		r.done <- nil // for the cleanup
	}
}

func TestAQMCheck(t *testing.T) {
	for _, a := range []AQM{{}, {Target: 500 * time.Microsecond, Interval: 5 * time.Millisecond}} {
		if err := a.Check(); err != nil {
			t.Errorf("%+v: %v", a, err)
		}
	}
	for _, a := range []AQM{
		{Target: time.Microsecond, Interval: time.Millisecond},
		{Target: time.Second, Interval: 2 * time.Second},
		{Target: time.Millisecond, Interval: 500 * time.Microsecond},
		{Target: time.Millisecond, Interval: time.Minute},
	} {
		if a.Check() == nil {
			t.Errorf("%+v accepted", a)
		}
	}
}

func TestMarkCEIPv6(t *testing.T) {
	p, _ := newTestTX(t)
	pkt := p.bufs[0][bufOffset : bufOffset+100]
	clear(pkt)
	pkt[0] = 0x60
	if p.markCE(0) {
		t.Fatal("marked a Not-ECT IPv6 packet")
	}
	pkt[1] = 0x10 // traffic class 0x01: ECT(1)
	if !p.markCE(0) || pkt[1]>>4&3 != 3 || pkt[0] != 0x60 {
		t.Fatalf("ECT(1) IPv6 not marked CE: % x", pkt[:2])
	}
}

// TestAQMZeroAllocs: judging a read and dropping a segment allocate nothing.
func TestAQMZeroAllocs(t *testing.T) {
	p, _ := newTestTX(t)
	for i := range batchSize {
		putTCPPacket(p.bufs[i][bufOffset:], 1400, "10.244.1.5", "10.244.2.9")
		p.sizes[i] = 1400
	}
	c := newCodel(MinAQMTarget, 200*time.Microsecond)
	now := int64(0)
	allocs := testing.AllocsPerRun(100, func() {
		now += int64(time.Millisecond)
		if c.onReadAt(now, false) {
			p.signalCongestion(batchSize)
		}
		p.encapBatch(batchSize)
		p.aqmDrop = -1
	})
	if allocs != 0 {
		t.Fatalf("the AQM allocates %.1f times per batch", allocs)
	}
	if p.tally.drops[DropQueueDelay] == 0 {
		t.Fatal("no segment dropped: the test did not exercise the drop")
	}
}

// FuzzAQMVictim: any bytes the TUN hands over, as packet heads of any
// length, neither panic the victim search nor the CE mark, and a victim is
// a TCP packet (IPv4 protocol or IPv6 next header 6).
func FuzzAQMVictim(f *testing.F) {
	f.Add([]byte{0x45, 0x02, 0, 100, 0, 0, 0, 0, 64, 6}, 100)
	f.Add([]byte{0x60, 0x10, 0, 0, 0, 40, 6, 64}, 1000)
	f.Add([]byte{0x40}, 20)
	f.Fuzz(func(t *testing.T, head []byte, size int) {
		p, _ := newTestTX(t)
		room := len(p.bufs[0]) - bufOffset
		if len(head) > room {
			head = head[:room]
		}
		copy(p.bufs[0][bufOffset:], head)
		if size < len(head) || size > 1<<16 {
			size = len(head)
		}
		p.sizes[0] = size
		p.tails[0] = make([]byte, size-len(head))
		v := p.aqmVictim(1)
		if v == 0 {
			proto := head[9]
			if head[0]>>4 == 6 {
				proto = head[6]
			}
			if proto != 6 {
				t.Fatalf("victim is not TCP: % x", head[:min(len(head), 40)])
			}
			p.markCE(0)
		}
	})
}
