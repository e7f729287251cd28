package overlay

import (
	"testing"
	"time"
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
