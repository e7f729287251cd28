//go:build !unit

package subnet_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/subnet/etcdtest"
)

// dual is issue 21's acceptance network.
const dual = `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:244::/56","IPv6SubnetLen":64,"Backend":{"Type":"udp"}}`

// flannelKeyRegexp is flanneld v0.28.10's lease key pattern
// (pkg/subnet/subnet.go subnetRegex): what it can read.
var flannelKeyRegexp = regexp.MustCompile(`(\d+\.\d+.\d+.\d+)-(\d+)(?:&([a-f\d:]+)-(\d+))?$`)

// flannelLeaseAttrs is the shape of flanneld's lease value (pkg/lease
// LeaseAttrs: PublicIP ip.IP4, PublicIPv6 *ip.IP6, the rest omitempty).
type flannelLeaseAttrs struct {
	PublicIP      string
	PublicIPv6    *string
	BackendType   string          `json:",omitempty"`
	BackendData   json.RawMessage `json:",omitempty"`
	BackendV6Data json.RawMessage `json:",omitempty"`
}

func attrs6(i int) subnet.LeaseAttrs {
	a := attrs(i)
	a.PublicIPv6 = fmt.Sprintf("2001:db8::%d", i)
	return a
}

// leased returns a new manager on cli and the lease it acquired in cfg with
// a's attributes; it fails the test when there is none.
func leased(t testing.TB, cli *clientv3.Client, cfg *subnet.Config, a subnet.LeaseAttrs) (*subnet.Manager, subnet.Lease) {
	t.Helper()
	m := newManager(t, cli, subnet.Options{TTL: time.Minute})
	l, err := m.AcquireLease(etcdtest.Context(t, 10*time.Second), cfg, a)
	if err != nil {
		t.Fatalf("acquire a lease for %s: %v", a.PublicIP, err)
	}
	return m, l
}

func listKeys(t *testing.T, cli *clientv3.Client) map[string]string {
	t.Helper()
	resp, err := cli.Get(etcdtest.Context(t, 5*time.Second), subnet.DefaultPrefix+"/subnets/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, kv := range resp.Kvs {
		out[strings.TrimPrefix(string(kv.Key), subnet.DefaultPrefix+"/subnets/")] = string(kv.Value)
	}
	return out
}

// A dual-stack lease sits at flannel's dual key with both subnets, and its
// key and value are what flanneld reads.
func TestDualStackLeaseAtFlannelKey(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	cfg := mustConfig(t, dual)
	m, l := leased(t, cli, cfg, attrs6(1))
	if !cfg.Contains(l.Subnet) || !cfg.Contains(l.IPv6Subnet) || !l.IPv6Subnet.Addr().Is6() {
		t.Fatalf("lease %+v: want an IPv4 and an IPv6 subnet of the network", l)
	}
	keys := listKeys(t, cli)
	want := fmt.Sprintf("%s-%d&%s-%d", l.Subnet.Addr(), l.Subnet.Bits(), l.IPv6Subnet.Addr(), l.IPv6Subnet.Bits())
	value, ok := keys[want]
	if len(keys) != 1 || !ok {
		t.Fatalf("keys %v, want only %s", keys, want)
	}
	if got := m.LeaseKeyOf(l); got != subnet.DefaultPrefix+"/subnets/"+want {
		t.Errorf("LeaseKeyOf = %s", got)
	}
	parts := flannelKeyRegexp.FindStringSubmatch(want)
	if len(parts) != 5 || parts[1] != l.Subnet.Addr().String() || parts[3] != l.IPv6Subnet.Addr().String() || parts[4] != "64" {
		t.Errorf("flanneld's key regexp reads %q as %q", want, parts)
	}
	var fa flannelLeaseAttrs
	if err := json.Unmarshal([]byte(value), &fa); err != nil {
		t.Fatal(err)
	}
	if fa.PublicIP != "192.0.2.1" || fa.PublicIPv6 == nil || *fa.PublicIPv6 != "2001:db8::1" || fa.BackendType != "udp" || string(fa.BackendData) != `{"Port":8285}` {
		t.Errorf("value %s read as flanneld would: %+v", value, fa)
	}
	if value != `{"PublicIP":"192.0.2.1","PublicIPv6":"2001:db8::1","BackendType":"udp","BackendData":{"Port":8285}}` {
		t.Errorf("value %s", value)
	}
}

// Leases flanneld v0.28.10 writes (dual stack: both subnets in the key,
// PublicIPv6 and BackendV6Data in the value; IPv6-only: "0.0.0.0-0&..."
// and PublicIP "0.0.0.0"; IPv4: PublicIPv6 null) are read as such.
func TestFlannelWrittenDualStackLeases(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	const vx = `{"VNI":1,"VtepMAC":"9e:51:3c:7a:05:2b"}`
	const vx6 = `{"VNI":1,"VtepMAC":"9e:51:3c:7a:05:2c"}`
	etcdtest.Put(t, cli, subnet.DefaultPrefix+"/subnets/10.244.5.0-24&fd10:244:0:5::-64",
		`{"PublicIP":"192.0.2.9","PublicIPv6":"2001:db8::9","BackendType":"vxlan","BackendData":`+vx+`,"BackendV6Data":`+vx6+`}`)
	m := newManager(t, cli, subnet.Options{TTL: time.Minute})
	got := watchSnapshot(t, m, mustConfig(t, dual))
	if len(got) != 1 {
		t.Fatalf("snapshot %+v, want the flanneld lease", got)
	}
	l := got[0]
	if l.Subnet != netip.MustParsePrefix("10.244.5.0/24") || l.IPv6Subnet != netip.MustParsePrefix("fd10:244:0:5::/64") ||
		l.Attrs.PublicIP != "192.0.2.9" || l.Attrs.PublicIPv6 != "2001:db8::9" || string(l.Attrs.BackendV6Data) != vx6 || string(l.Attrs.BackendData) != vx {
		t.Errorf("lease %+v", l)
	}
	// The same key in an IPv4 network is that node's IPv4 lease.
	got = watchSnapshot(t, m, mustConfig(t, `{"Network":"10.244.0.0/16"}`))
	if len(got) != 1 || got[0].Subnet != netip.MustParsePrefix("10.244.5.0/24") || got[0].IPv6Subnet.IsValid() {
		t.Errorf("in an IPv4 network: %+v", got)
	}

	srv2 := etcdtest.Start(t)
	cli2 := srv2.Client(t)
	etcdtest.Put(t, cli2, subnet.DefaultPrefix+"/subnets/0.0.0.0-0&fd10:244:0:7::-64",
		`{"PublicIP":"0.0.0.0","PublicIPv6":"2001:db8::7","BackendType":"udp","BackendData":{"Port":8285}}`)
	m2 := newManager(t, cli2, subnet.Options{TTL: time.Minute})
	got = watchSnapshot(t, m2, mustConfig(t, `{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd10:244::/56"}`))
	if len(got) != 1 || got[0].Subnet.IsValid() || got[0].IPv6Subnet != netip.MustParsePrefix("fd10:244:0:7::/64") || got[0].Attrs.PublicIP != "" || got[0].Attrs.PublicIPv6 != "2001:db8::7" {
		t.Fatalf("IPv6-only flanneld lease: %+v", got)
	}
	if ep, err := got[0].Endpoint(); err != nil || ep.String() != "[2001:db8::7]:8285" {
		t.Errorf("Endpoint() = %v, %v", ep, err)
	}
}

// watchSnapshot returns the first snapshot WatchLeases delivers.
func watchSnapshot(t *testing.T, m *subnet.Manager, cfg *subnet.Config, own ...netip.Prefix) []subnet.Lease {
	t.Helper()
	ctx, cancel := context.WithCancel(etcdtest.Context(t, 10*time.Second))
	defer cancel()
	ch := make(chan []subnet.Lease, 1)
	ownP := netip.Prefix{}
	if len(own) > 0 {
		ownP = own[0]
	}
	go m.WatchLeases(ctx, cfg, ownP, func(snap []subnet.Lease, _ []subnet.Event) {
		if snap != nil {
			select {
			case ch <- snap:
			default:
			}
		}
	})
	select {
	case s := <-ch:
		return s
	case <-ctx.Done():
		t.Fatal("no snapshot")
	}
	return nil
}

// An IPv6-only lease sits at flanneld's IPv6-only key ("0.0.0.0-0&...",
// the only one its regexp reads) without a PublicIP.
func TestIPv6OnlyLease(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	cfg := mustConfig(t, `{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd10:244::/56"}`)
	m := newManager(t, cli, subnet.Options{TTL: time.Minute})
	if _, err := m.AcquireLease(etcdtest.Context(t, 10*time.Second), cfg, attrs(1)); err == nil || !strings.Contains(err.Error(), "IPv6-only network needs") {
		t.Fatalf("IPv6-only network without PublicIPv6: %v", err)
	}
	a := subnet.LeaseAttrs{PublicIPv6: "2001:db8::1", BackendType: "udp", BackendData: json.RawMessage(`{"Port":8285}`)}
	l, err := m.AcquireLease(etcdtest.Context(t, 10*time.Second), cfg, a)
	if err != nil {
		t.Fatal(err)
	}
	if l.Subnet.IsValid() || !cfg.Contains(l.IPv6Subnet) || l.Primary() != l.IPv6Subnet {
		t.Fatalf("lease %+v", l)
	}
	keys := listKeys(t, cli)
	name := "0.0.0.0-0&" + l.IPv6Subnet.Addr().String() + "-64"
	if v, ok := keys[name]; !ok || len(keys) != 1 || v != `{"PublicIPv6":"2001:db8::1","BackendType":"udp","BackendData":{"Port":8285}}` {
		t.Fatalf("keys %v, want %s", keys, name)
	}
	if parts := flannelKeyRegexp.FindStringSubmatch(name); len(parts) != 5 || parts[3] != l.IPv6Subnet.Addr().String() {
		t.Errorf("flanneld's regexp reads %q as %q", name, parts)
	}
	// Restarting gets the same lease back.
	again, err := newManager(t, cli, subnet.Options{TTL: time.Minute}).AcquireLease(etcdtest.Context(t, 10*time.Second), cfg, a)
	if err != nil || again.IPv6Subnet != l.IPv6Subnet {
		t.Fatalf("again: %+v, %v", again, err)
	}
}

// 40 nodes race for a pool of 40 IPv4 and 40 IPv6 subnets: each gets one
// of each, no subnet twice; the 41st finds the pool full and writes
// nothing.
func TestDualStackAllocatorsRace(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	cfg := mustConfig(t, `{"Network":"10.244.0.0/16","SubnetMin":"10.244.10.0","SubnetMax":"10.244.49.0","EnableIPv6":true,"IPv6Network":"fd10:244::/56","IPv6SubnetMin":"fd10:244:0:10::","IPv6SubnetMax":"fd10:244:0:37::"}`)
	ctx := etcdtest.Context(t, 60*time.Second)
	const n = 40
	leases := make([]subnet.Lease, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			m := newManager(t, cli, subnet.Options{TTL: time.Minute, Logger: quietLogger()})
			leases[i], errs[i] = m.AcquireLease(ctx, cfg, attrs6(i+1))
		})
	}
	wg.Wait()
	seen := map[netip.Prefix]int{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("allocator %d: %v", i, err)
		}
		for _, p := range []netip.Prefix{leases[i].Subnet, leases[i].IPv6Subnet} {
			if !cfg.Contains(p) {
				t.Errorf("allocator %d got %s outside the pool", i, p)
			}
			if j, dup := seen[p]; dup {
				t.Errorf("allocators %d and %d both got %s", j, i, p)
			}
			seen[p] = i
		}
	}
	if keys := listKeys(t, cli); len(keys) != n {
		t.Errorf("%d keys, want %d", len(keys), n)
	}
	m := newManager(t, cli, subnet.Options{TTL: time.Minute})
	if _, err := m.AcquireLease(ctx, cfg, attrs6(200)); !errors.Is(err, subnet.ErrPoolExhausted) {
		t.Errorf("41st: %v, want ErrPoolExhausted", err)
	}
	if keys := listKeys(t, cli); len(keys) != n {
		t.Errorf("%d keys after the refused one, want %d", len(keys), n)
	}
}

// When the IPv6 pool is full and the IPv4 one is not, nothing is taken:
// both subnets or neither.
func TestDualStackBothOrNeither(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	cfg := mustConfig(t, `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:244::/56","IPv6SubnetMin":"fd10:244:0:10::","IPv6SubnetMax":"fd10:244:0:10::"}`)
	m := newManager(t, cli, subnet.Options{TTL: time.Minute})
	if _, err := m.AcquireLease(etcdtest.Context(t, 10*time.Second), cfg, attrs6(1)); err != nil {
		t.Fatal(err)
	}
	_, err := m.AcquireLease(etcdtest.Context(t, 10*time.Second), cfg, attrs6(2))
	if !errors.Is(err, subnet.ErrPoolExhausted) || !strings.Contains(err.Error(), "IPv6 subnet") {
		t.Fatalf("second node: %v, want ErrPoolExhausted naming IPv6", err)
	}
	if keys := listKeys(t, cli); len(keys) != 1 {
		t.Errorf("keys %v: the refused node left something", keys)
	}
}

// An IPv4 cluster that turns dual-stack: a node's IPv4 lease keeps its
// subnet and gains an IPv6 one (its key replaced by the dual key in one
// Txn); another node's IPv4-only key is skipped as a peer (counted), its
// subnet never given to anyone else; turning IPv6 off again keeps the
// IPv4 subnet too.
func TestEnableIPv6KeepsIPv4Subnets(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	v4 := mustConfig(t, `{"Network":"10.244.0.0/16","SubnetMin":"10.244.1.0","SubnetMax":"10.244.3.0"}`)
	dualCfg := mustConfig(t, `{"Network":"10.244.0.0/16","SubnetMin":"10.244.1.0","SubnetMax":"10.244.3.0","EnableIPv6":true,"IPv6Network":"fd10:244::/56"}`)
	ctx := etcdtest.Context(t, 30*time.Second)
	m1 := newManager(t, cli, subnet.Options{TTL: time.Minute})
	m2 := newManager(t, cli, subnet.Options{TTL: time.Minute})
	l1, err := m1.AcquireLease(ctx, v4, attrs(1))
	if err != nil {
		t.Fatal(err)
	}
	l2, err := m2.AcquireLease(ctx, v4, attrs(2))
	if err != nil {
		t.Fatal(err)
	}
	// Node 1 restarts with the dual-stack config.
	u1, err := m1.AcquireLease(ctx, dualCfg, attrs6(1))
	if err != nil {
		t.Fatal(err)
	}
	if u1.Subnet != l1.Subnet || !dualCfg.Contains(u1.IPv6Subnet) {
		t.Fatalf("upgraded lease %+v, want %s and an IPv6 subnet", u1, l1.Subnet)
	}
	keys := listKeys(t, cli)
	if _, ok := keys[strings.TrimPrefix(m1.LeaseKeyOf(u1), subnet.DefaultPrefix+"/subnets/")]; !ok || len(keys) != 2 {
		t.Fatalf("keys %v: want node 1's dual key and node 2's IPv4 key", keys)
	}
	// Node 1 sees node 2's IPv4-only key as unusable, counted.
	if snap := watchSnapshot(t, m1, dualCfg, u1.Primary()); len(snap) != 0 {
		t.Errorf("snapshot %+v: the IPv4-only key is no dual-stack peer", snap)
	}
	if n := m1.MalformedLeases(); n != 1 {
		t.Errorf("MalformedLeases = %d, want 1", n)
	}
	// A third node gets the one IPv4 subnet left, not node 2's.
	m3 := newManager(t, cli, subnet.Options{TTL: time.Minute})
	l3, err := m3.AcquireLease(ctx, dualCfg, attrs6(3))
	if err != nil {
		t.Fatal(err)
	}
	if l3.Subnet == l2.Subnet || l3.Subnet == l1.Subnet {
		t.Fatalf("third node got %s, held by node 1 or 2", l3.Subnet)
	}
	if _, err := newManager(t, cli, subnet.Options{TTL: time.Minute}).AcquireLease(ctx, dualCfg, attrs6(4)); !errors.Is(err, subnet.ErrPoolExhausted) {
		t.Errorf("fourth node: %v, want ErrPoolExhausted (node 2's subnet is not free)", err)
	}
	// Node 2 restarts dual-stack too: same IPv4 subnet.
	u2, err := m2.AcquireLease(ctx, dualCfg, attrs6(2))
	if err != nil || u2.Subnet != l2.Subnet || u2.IPv6Subnet == u1.IPv6Subnet || u2.IPv6Subnet == l3.IPv6Subnet {
		t.Fatalf("node 2 upgraded: %+v, %v", u2, err)
	}
	// IPv6 switched off again: node 1 keeps its IPv4 subnet, IPv4 key.
	d1, err := m1.AcquireLease(ctx, v4, attrs(1))
	if err != nil || d1.Subnet != l1.Subnet || d1.IPv6Subnet.IsValid() {
		t.Fatalf("node 1 back to IPv4: %+v, %v", d1, err)
	}
	if v := etcdtest.Get(t, cli, m1.LeaseKey(l1.Subnet)); len(v.Kvs) != 1 {
		t.Errorf("no IPv4 key %s", m1.LeaseKey(l1.Subnet))
	}
}

// KeepLease keeps the dual key: a deleted key is put back with both
// subnets.
func TestKeepDualStackLease(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	cfg := mustConfig(t, dual)
	m, l := leased(t, cli, cfg, attrs6(1))
	ctx, cancel := context.WithCancel(etcdtest.Context(t, 30*time.Second))
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.KeepLease(ctx, cfg, l, nil) }()
	key := m.LeaseKeyOf(l)
	time.Sleep(200 * time.Millisecond)
	if _, err := cli.Delete(etcdtest.Context(t, 5*time.Second), key); err != nil {
		t.Fatal(err)
	}
	etcdtest.Eventually(t, 10*time.Second, "the dual key is back", func() bool { return len(etcdtest.Get(t, cli, key).Kvs) == 1 })
	if keys := listKeys(t, cli); len(keys) != 1 {
		t.Errorf("keys %v", keys)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A stray writer's key that names this node's IPv6 subnet under another
// IPv4 subnet is no peer: traffic for our own containers stays here.
func TestWatchIgnoresKeyClaimingOwnIPv6Subnet(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	cfg := mustConfig(t, dual)
	m, own := leased(t, cli, cfg, attrs6(1))
	stray := fmt.Sprintf("/weft/network/subnets/10.244.200.0-24&%s-64", own.IPv6Subnet.Addr())
	etcdtest.Put(t, cli, stray, `{"PublicIP":"192.0.2.66","BackendType":"udp","BackendData":{"Port":8285}}`)
	// The honest peer's subnets must not be this node's own (its lease is
	// random: 10.244.201.0/24 was once ours, and the test failed).
	honest := 201
	for own.Subnet == netip.MustParsePrefix(fmt.Sprintf("10.244.%d.0/24", honest)) || own.IPv6Subnet == netip.MustParsePrefix(fmt.Sprintf("fd10:244:0:%x::/64", honest)) {
		honest++
	}
	etcdtest.Put(t, cli, fmt.Sprintf("/weft/network/subnets/10.244.%d.0-24&fd10:244:0:%x::-64", honest, honest), `{"PublicIP":"192.0.2.67","BackendType":"udp","BackendData":{"Port":8285}}`)
	snap := watchSnapshot(t, m, cfg, own.Primary())
	if len(snap) != 1 || snap[0].Subnet != netip.MustParsePrefix(fmt.Sprintf("10.244.%d.0/24", honest)) {
		t.Fatalf("snapshot %+v: want only the honest peer", snap)
	}
	// And as a watch event.
	ctx, cancel := context.WithCancel(etcdtest.Context(t, 10*time.Second))
	defer cancel()
	events := make(chan subnet.Event, 8)
	go m.WatchLeases(ctx, cfg, own.Primary(), func(_ []subnet.Lease, evs []subnet.Event) {
		for _, e := range evs {
			events <- e
		}
	})
	time.Sleep(300 * time.Millisecond)
	etcdtest.Put(t, cli, fmt.Sprintf("/weft/network/subnets/10.244.202.0-24&%s-64", own.IPv6Subnet.Addr()), `{"PublicIP":"192.0.2.68","BackendType":"udp","BackendData":{"Port":8285}}`)
	etcdtest.Put(t, cli, "/weft/network/subnets/10.244.203.0-24&fd10:244:0:cb::-64", `{"PublicIP":"192.0.2.69","BackendType":"udp","BackendData":{"Port":8285}}`)
	select {
	case e := <-events:
		if e.Lease.Subnet != netip.MustParsePrefix("10.244.203.0/24") {
			t.Fatalf("event %+v: the key claiming our IPv6 subnet was delivered", e)
		}
	case <-ctx.Done():
		t.Fatal("no event")
	}
}
