//go:build !unit

package vxlan

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/weftnet/weft/testbed"
)

// nsHandle is a netlink handle inside a new namespace holding a veth
// "under0" (192.0.2.1/24) as the underlay.
func nsHandle(t *testing.T) (*testbed.NS, *netlink.Handle, netlink.Link) {
	t.Helper()
	n := testbed.NSForTest(t, "wvx")
	nh, err := netns.GetFromPath(n.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nh.Close() })
	h, err := netlink.NewHandleAt(nh)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, args := range [][]string{
		{"ip", "link", "add", "under0", "type", "veth", "peer", "name", "under1"},
		{"ip", "addr", "add", "192.0.2.1/24", "dev", "under0"},
		{"ip", "link", "set", "under0", "up"},
		{"ip", "link", "set", "under1", "up"},
	} {
		if _, err := n.Run(ctx, args[0], args[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	link, err := h.LinkByName("under0")
	if err != nil {
		t.Fatal(err)
	}
	return n, h, link
}

func run(t *testing.T, n *testbed.NS, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := n.Run(ctx, args[0], args[1:]...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func spec(link netlink.Link) DeviceSpec {
	return DeviceSpec{Config: Config{VNI: 1, Port: DefaultPort}, UnderlayIndex: link.Attrs().Index,
		PublicIP: netip.MustParseAddr("192.0.2.1"), MTU: 1450}
}

// The device, its address and one peer's entries are what flanneld makes
// (compared in iproute2's words); entries deleted by hand come back; a
// device that exists is kept with its MAC address.
func TestDeviceAsFlanneldMakesIt(t *testing.T) {
	n, h, under := nsHandle(t)
	dev, reused, err := EnsureDevice(h, spec(under))
	if err != nil {
		t.Fatal(err)
	}
	if reused {
		t.Fatal("a new namespace already had flannel.1")
	}
	if err := dev.Configure(netip.MustParsePrefix("10.244.5.0/24"), netip.MustParsePrefix("10.244.0.0/16")); err != nil {
		t.Fatal(err)
	}
	out := run(t, n, "ip", "-d", "link", "show", "flannel.1")
	for _, w := range []string{"mtu 1450", "vxlan id 1", "local 192.0.2.1", "dev under0", "dstport 8472", "nolearning", "UP", dev.MAC.String()} {
		if !strings.Contains(out, w) {
			t.Errorf("ip -d link show flannel.1 lacks %q:\n%s", w, out)
		}
	}
	if out := run(t, n, "ip", "-4", "addr", "show", "dev", "flannel.1"); !strings.Contains(out, "inet 10.244.5.0/32") {
		t.Errorf("address: %s", out)
	}

	p := peer("10.244.7.0/24", "192.0.2.7", MAC{0x0a, 0x58, 1, 2, 3, 4})
	want, _ := Want([]Peer{p}, nil)
	if c, err := Sync(dev, want); err != nil || len(c.Errors) > 0 {
		t.Fatal(err, c.Errors)
	}
	check := func() {
		t.Helper()
		if out := run(t, n, "ip", "neigh", "show", "dev", "flannel.1"); !strings.Contains(out, "10.244.7.0 lladdr 0a:58:01:02:03:04 PERMANENT") {
			t.Errorf("neighbours: %s", out)
		}
		if out := run(t, n, "bridge", "fdb", "show", "dev", "flannel.1"); !strings.Contains(out, "0a:58:01:02:03:04 dst 192.0.2.7 self permanent") {
			t.Errorf("fdb: %s", out)
		}
		if out := run(t, n, "ip", "route", "show", "10.244.7.0/24"); !strings.Contains(out, "10.244.7.0/24 via 10.244.7.0 dev flannel.1 onlink") {
			t.Errorf("route: %q", out)
		}
	}
	check()
	run(t, n, "ip", "route", "del", "10.244.7.0/24")
	run(t, n, "bridge", "fdb", "del", "0a:58:01:02:03:04", "dev", "flannel.1", "dst", "192.0.2.7")
	run(t, n, "ip", "neigh", "del", "10.244.7.0", "dev", "flannel.1")
	c, err := Sync(dev, want)
	if err != nil || len(c.Errors) > 0 || len(c.Set.Routes) != 1 || len(c.Set.FDBs) != 1 || len(c.Set.Neighs) != 1 {
		t.Fatalf("repair: %+v %v", c, err)
	}
	check()

	// Someone else's route to a subnet in the network is left alone.
	run(t, n, "ip", "route", "add", "10.244.8.0/24", "via", "192.0.2.8", "dev", "under0")
	q := peer("10.244.8.0/24", "192.0.2.8", MAC{0x0a, 0x58, 1, 2, 3, 5})
	want, _ = Want([]Peer{p, q}, nil)
	if c, _ := Sync(dev, want); len(c.Blocked) != 1 {
		t.Fatalf("blocked %v", c.Blocked)
	}
	if out := run(t, n, "ip", "route", "show", "10.244.8.0/24"); !strings.Contains(out, "via 192.0.2.8 dev under0") {
		t.Fatalf("foreign route changed: %s", out)
	}

	// Again, as after a restart: the device is kept, with its MAC address.
	again, reused, err := EnsureDevice(h, spec(under))
	if err != nil || !reused || again.MAC != dev.MAC {
		t.Fatalf("second EnsureDevice: reused %t, MAC %s (was %s), %v", reused, again.MAC, dev.MAC, err)
	}
	// Stale entries of a peer that left are removed by the next sync.
	again.network = dev.network
	if c, _ := Sync(again, State{}); len(c.Del.Routes) != 1 || len(c.Del.FDBs) != 2 || len(c.Del.Neighs) != 2 {
		t.Fatalf("cleanup: %+v", c.Plan)
	}
	if out := run(t, n, "ip", "route", "show", "dev", "flannel.1"); strings.TrimSpace(out) != "" {
		t.Fatalf("routes left: %s", out)
	}
}

// Bad host state: a device named flannel.1 that is not VXLAN is refused
// and left alone; a port held by another socket is a clear error.
func TestDeviceRefusals(t *testing.T) {
	n, h, under := nsHandle(t)
	run(t, n, "ip", "link", "add", "flannel.1", "type", "bridge")
	_, _, err := EnsureDevice(h, spec(under))
	if err == nil || !strings.Contains(err.Error(), "not weft's") {
		t.Fatalf("want refusal of a bridge named flannel.1, got %v", err)
	}
	run(t, n, "ip", "link", "del", "flannel.1")

	var conn *net.UDPConn
	if err := ns.WithNetNSPath(n.Path(), func(ns.NetNS) error {
		var err error
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{Port: DefaultPort})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _, err = EnsureDevice(h, spec(under))
	if !errors.Is(err, ErrPortInUse) {
		t.Fatalf("port held by a socket: got %v, want ErrPortInUse", err)
	}
}
