package etcdtest

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/subnet/embedded"
)

// Cluster is a multi-member embedded etcd cluster.
type Cluster struct {
	Members []*Server
}

// StartCluster starts n members that form one cluster, stopped when the
// test ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("etcdtest: cluster of %d members", n)
	}
	c := &Cluster{}
	var peers []string
	for i := range n {
		s := &Server{opts: memberOptions(t, fmt.Sprintf("m%d", i), t.TempDir())}
		c.Members = append(c.Members, s)
		peers = append(peers, s.opts.Name+"="+s.opts.PeerURL)
	}
	for _, s := range c.Members {
		s.opts.InitialCluster = strings.Join(peers, ",")
		s.opts.ClusterToken = "etcdtest-" + t.Name()
	}
	// Members become ready only together (they need a quorum).
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, s := range c.Members {
		wg.Go(func() {
			emb, err := embedded.Start(s.opts)
			errs[i] = err
			s.mu.Lock()
			s.emb = emb
			s.mu.Unlock()
		})
	}
	wg.Wait()
	t.Cleanup(c.Stop)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("etcdtest: start member %d: %v", i, err)
		}
	}
	return c
}

// Endpoints returns every member's client URL.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, s := range c.Members {
		eps = append(eps, s.Endpoints()...)
	}
	return eps
}

// Client returns a client of all members, closed when the test ends.
func (c *Cluster) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return NewClient(t, subnet.ClientOptions{Endpoints: c.Endpoints()})
}

// StopMember stops member i.
func (c *Cluster) StopMember(i int) { c.Members[i].Stop() }

// RestartMember starts member i again on its data and ports.
func (c *Cluster) RestartMember(t testing.TB, i int) { c.Members[i].Restart(t) }

// Stop stops every member.
func (c *Cluster) Stop() {
	for _, s := range c.Members {
		s.Stop()
	}
}
