//go:build !unit

package subnet_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/subnet/etcdtest"
)

// benchLeases is the size of the lease table. A /12 holds only 4,096 /24
// subnets, so the benchmark uses a /11 network (8,192 /24s).
const benchLeases = 5000

var benchNetwork = netip.MustParsePrefix("10.64.0.0/11")

// fillLeases writes n leases in Txn batches (etcd allows 128 ops per Txn).
func fillLeases(b *testing.B, cli *clientv3.Client, m *subnet.Manager, n int) {
	b.Helper()
	ctx := context.Background()
	base := benchNetwork.Addr().As4()
	var ops []clientv3.Op
	flush := func() {
		if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			b.Fatalf("fill leases: %v", err)
		}
		ops = ops[:0]
	}
	for i := 1; i <= n; i++ {
		a := base
		a[1] += byte(i >> 8)
		a[2] = byte(i)
		s := netip.PrefixFrom(netip.AddrFrom4(a), 24)
		ops = append(ops, clientv3.OpPut(m.LeaseKey(s), leaseValue(fmt.Sprintf("192.0.2.%d", i%250+1), "8285")))
		if len(ops) == 128 {
			flush()
		}
	}
	if len(ops) > 0 {
		flush()
	}
}

// BenchmarkWatchSnapshot5000: time for a starting watcher to deliver the
// full snapshot of 5,000 leases.
func BenchmarkWatchSnapshot5000(b *testing.B) {
	srv := etcdtest.Start(b)
	cli := srv.Client(b)
	m := newManager(b, cli, subnet.Options{Logger: quietLogger()})
	fillLeases(b, cli, m, benchLeases)
	b.ResetTimer()
	for b.Loop() {
		ctx, cancel := context.WithCancel(context.Background())
		got := make(chan int, 1)
		done := make(chan struct{})
		go func() {
			defer close(done)
			m.WatchLeases(ctx, benchConfig(b), netip.Prefix{}, func(snapshot []subnet.Lease, _ []subnet.Event) {
				if snapshot != nil {
					select {
					case got <- len(snapshot):
					default:
					}
				}
			})
		}()
		if n := <-got; n != benchLeases {
			b.Fatalf("snapshot of %d leases, want %d", n, benchLeases)
		}
		cancel()
		<-done
	}
}

// BenchmarkWatchOneEvent5000: with 5,000 leases known, the cost of one
// lease change, from the Put to handle(nil, [one event]) (no rebuild).
func BenchmarkWatchOneEvent5000(b *testing.B) {
	srv := etcdtest.Start(b)
	cli := srv.Client(b)
	m := newManager(b, cli, subnet.Options{Logger: quietLogger()})
	fillLeases(b, cli, m, benchLeases)
	events := make(chan int, 16)
	snap := make(chan int, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.WatchLeases(ctx, benchConfig(b), netip.Prefix{}, func(snapshot []subnet.Lease, evs []subnet.Event) {
		if evs == nil {
			snap <- len(snapshot)
			return
		}
		events <- len(evs)
	})
	if n := <-snap; n != benchLeases {
		b.Fatalf("snapshot %d", n)
	}
	key := m.LeaseKey(netip.MustParsePrefix("10.95.255.0/24"))
	b.ResetTimer()
	i := 0
	for b.Loop() {
		i++
		if _, err := cli.Put(ctx, key, leaseValue("192.0.2.1", fmt.Sprint(1000+i%1000))); err != nil {
			b.Fatal(err)
		}
		select {
		case n := <-events:
			if n != 1 {
				b.Fatalf("%d events, want 1", n)
			}
		case <-time.After(10 * time.Second):
			b.Fatal("event not delivered")
		}
	}
	b.StopTimer()
	select {
	case <-snap:
		b.Fatal("a re-list happened during the benchmark")
	default:
	}
}

// benchConfig is a network config holding every subnet fillLeases writes.
func benchConfig(b *testing.B) *subnet.Config {
	return mustConfig(b, `{"Network":"`+benchNetwork.String()+`","SubnetLen":24}`)
}
