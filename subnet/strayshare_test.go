//go:build !unit

package subnet_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/subnet/etcdtest"
)

// A stray writer's key that shares one subnet with a peer's key (the
// peer's IPv4 subnet with another IPv6 subnet, or the peer's IPv6 subnet
// under another IPv4 subnet) is no peer: the peer's traffic stays with the
// peer, in the snapshot and in watch events, and deleting the stray key
// removes nothing.
func TestWatchIgnoresKeySharingAPeersSubnet(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	cfg := mustConfig(t, dual)
	m, own := leased(t, cli, cfg, attrs6(1))
	mb, peer := leased(t, cli, cfg, attrs6(2))
	strayValue := `{"PublicIP":"192.0.2.66","PublicIPv6":"2001:db8::66","BackendType":"udp","BackendData":{"Port":8285}}`
	sameV4 := fmt.Sprintf("/weft/network/subnets/%s-24&fd10:244:0:99::-64", peer.Subnet.Addr())
	sameV6 := fmt.Sprintf("/weft/network/subnets/10.244.99.0-24&%s-64", peer.IPv6Subnet.Addr())
	etcdtest.Put(t, cli, sameV4, strayValue)
	etcdtest.Put(t, cli, sameV6, strayValue)
	snap := watchSnapshot(t, m, cfg, own.Primary())
	if len(snap) != 1 || snap[0].Subnet != peer.Subnet || snap[0].IPv6Subnet != peer.IPv6Subnet || snap[0].Attrs.PublicIP != peer.Attrs.PublicIP {
		t.Fatalf("snapshot %+v: want only the peer %v", snap, peer)
	}
	before := m.MalformedLeases()
	if before < 2 {
		t.Errorf("MalformedLeases %d after the listing: the two stray keys are not counted", before)
	}
	if _, err := cli.Delete(etcdtest.Context(t, 5*time.Second), sameV4); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Delete(etcdtest.Context(t, 5*time.Second), sameV6); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(etcdtest.Context(t, 20*time.Second))
	defer cancel()
	events := make(chan subnet.Event, 16)
	ready := make(chan struct{})
	go m.WatchLeases(ctx, cfg, own.Primary(), func(s []subnet.Lease, evs []subnet.Event) {
		if s != nil {
			close(ready)
		}
		for _, e := range evs {
			events <- e
		}
	})
	<-ready
	etcdtest.Put(t, cli, sameV4, strayValue)
	etcdtest.Put(t, cli, sameV6, strayValue)
	if _, err := cli.Delete(etcdtest.Context(t, 5*time.Second), sameV4); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Delete(etcdtest.Context(t, 5*time.Second), sameV6); err != nil {
		t.Fatal(err)
	}
	marker := "/weft/network/subnets/10.244.203.0-24&fd10:244:0:cb::-64"
	etcdtest.Put(t, cli, marker, `{"PublicIP":"192.0.2.69","PublicIPv6":"2001:db8::69","BackendType":"udp","BackendData":{"Port":8285}}`)
	next := func() subnet.Event {
		t.Helper()
		select {
		case e := <-events:
			return e
		case <-ctx.Done():
			t.Fatal("no event")
		}
		return subnet.Event{}
	}
	for e := next(); e.Lease.Subnet.String() != "10.244.203.0/24"; e = next() {
		t.Errorf("event %v %v (%s): a stray key sharing the peer's subnet was delivered", e.Type, e.Lease, e.Lease.Attrs.PublicIP)
	}
	// Once the peer's own key is gone, the key left naming its subnet is
	// delivered (as a fresh listing would show it).
	etcdtest.Put(t, cli, sameV4, strayValue)
	if _, err := cli.Delete(etcdtest.Context(t, 5*time.Second), mb.LeaseKeyOf(peer)); err != nil {
		t.Fatal(err)
	}
	if e := next(); e.Type != subnet.EventRemoved || e.Lease.Subnet != peer.Subnet || e.Lease.IPv6Subnet != peer.IPv6Subnet {
		t.Fatalf("event %v %v: want the peer's removal", e.Type, e.Lease)
	}
	if e := next(); e.Type != subnet.EventAdded || e.Lease.Subnet != peer.Subnet || e.Lease.IPv6Subnet.String() != "fd10:244:0:99::/64" {
		t.Fatalf("event %v %v: want the key left for the subnet", e.Type, e.Lease)
	}
}

// In an IPv4 network a dual key is its IPv4 lease (as flanneld reads it):
// a stray "<peer's subnet>&<any IPv6>" key is a second key for the peer's
// subnet and takes nothing from it.
func TestWatchIPv4NetworkIgnoresDualKeyOverAPeer(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	cfg := mustConfig(t, net16)
	m, own := leased(t, cli, cfg, attrs(1))
	_, peer := leased(t, cli, cfg, attrs(2))
	etcdtest.Put(t, cli, fmt.Sprintf("/weft/network/subnets/%s-24&fd10:244:0:99::-64", peer.Subnet.Addr()),
		`{"PublicIP":"192.0.2.66","PublicIPv6":"2001:db8::66","BackendType":"udp","BackendData":{"Port":8285}}`)
	etcdtest.Put(t, cli, fmt.Sprintf("/weft/network/subnets/%s-24&fd10:244:0:98::-64", own.Subnet.Addr()),
		`{"PublicIP":"192.0.2.67","BackendType":"udp","BackendData":{"Port":8285}}`)
	snap := watchSnapshot(t, m, cfg, own.Primary())
	if len(snap) != 1 || snap[0].Subnet != peer.Subnet || snap[0].Attrs.PublicIP != peer.Attrs.PublicIP {
		t.Fatalf("snapshot %+v: want only the peer %v at %s", snap, peer, peer.Attrs.PublicIP)
	}
}
