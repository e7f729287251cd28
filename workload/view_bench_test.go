//go:build !unit

package workload_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/subnet/etcdtest"
	"github.com/weftnet/weft/workload"
)

// BenchmarkViewPropagation1000: with 1,000 attachments and 50 policies
// stored, the time from a policy write (ApplyPolicies returns) until a
// watching node holds a view that contains it, debounce included. Ten
// watchers stand for ten nodes; an iteration ends when the last has it.
func BenchmarkViewPropagation1000(b *testing.B) {
	srv := etcdtest.Start(b)
	m := newStore(b, srv.Client(b), subnet.Options{Logger: quietLogger()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for node := range 10 {
		pub := m.NewPublisher(fmt.Sprintf("192.0.2.%d", node+1), 0)
		var eps []workload.Attachment
		for i := range 100 {
			eps = append(eps, ep(fmt.Sprintf("10.244.%d.%d", node+1, i+2), fmt.Sprintf("ns%d", i%3), fmt.Sprintf("p%d", i),
				map[string]string{"app": fmt.Sprintf("a%d", i%7)}))
		}
		if err := pub.Start(ctx, eps); err != nil {
			b.Fatal(err)
		}
	}
	var ps []workload.Policy
	for i := range 50 {
		name := fmt.Sprintf("p%d", i)
		ps = append(ps, workload.Policy{Namespace: "ns0", Name: name, JSON: policyJSON("ns0", name)})
	}
	if _, err := m.ApplyPolicies(ctx, ps); err != nil {
		b.Fatal(err)
	}

	const watchers = 10
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	seen := make([]int, watchers) // generation each watcher has seen
	var wg sync.WaitGroup
	for w := range watchers {
		wm := newStore(b, srv.Client(b), subnet.Options{Logger: quietLogger()})
		wg.Go(func() {
			wm.WatchView(ctx, 0, func(v workload.View) {
				if len(v.Attachments) != 1000 {
					return
				}
				gen := -1
				for _, p := range v.Policies {
					if p.Name == "gen" {
						fmt.Sscanf(string(p.JSON[len(`{"gen":`):]), "%d", &gen)
					}
				}
				mu.Lock()
				seen[w] = gen
				cond.Broadcast()
				mu.Unlock()
			})
		})
	}
	gen := 0
	b.ResetTimer()
	for b.Loop() {
		gen++
		if _, err := m.ApplyPolicies(ctx, []workload.Policy{{Namespace: "ns0", Name: "gen", JSON: fmt.Appendf(nil, `{"gen":%d}`, gen)}}); err != nil {
			b.Fatal(err)
		}
		mu.Lock()
		for !allAt(seen, gen) {
			cond.Wait()
		}
		mu.Unlock()
	}
	b.StopTimer()
	cancel()
	wg.Wait()
}

func allAt(seen []int, gen int) bool {
	for _, g := range seen {
		if g < gen {
			return false
		}
	}
	return true
}
