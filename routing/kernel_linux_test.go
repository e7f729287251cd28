//go:build !unit

package routing

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/weftnet/weft/testbed"
)

// kernelInNS returns a Kernel working in a fresh namespace whose "eth0"
// (one end of a veth pair) has 192.0.2.1/24.
func kernelInNS(t *testing.T) (*Kernel, *testbed.NS) {
	t.Helper()
	ns := testbed.NSForTest(t, "wrt")
	for _, args := range [][]string{
		{"ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p"},
		{"ip", "link", "set", "eth0p", "up"},
		{"ip", "addr", "add", "192.0.2.1/24", "dev", "eth0"},
		{"ip", "link", "set", "eth0", "up"},
	} {
		if out, err := ns.Run(context.Background(), args[0], args[1:]...); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	nsh, err := netns.GetFromPath(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nsh.Close() })
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	k, err := NewKernel(h, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	return k, ns
}

func ipRoutes(t *testing.T, ns *testbed.NS) string {
	t.Helper()
	out, err := ns.Run(context.Background(), "ip", "-4", "route", "show", "table", "main")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestKernelSync(t *testing.T) {
	k, ns := kernelInNS(t)
	run := func(args ...string) {
		t.Helper()
		if out, err := ns.Run(context.Background(), "ip", args...); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	// An earlier run left a weft route; someone added routes by hand, one
	// of them for a subnet a peer will lease.
	run("route", "add", "10.244.9.0/24", "via", "192.0.2.9", "dev", "eth0", "proto", "119")
	run("route", "add", "10.99.0.0/16", "via", "192.0.2.50", "dev", "eth0")
	run("route", "add", "10.244.3.0/24", "via", "192.0.2.50", "dev", "eth0", "proto", "static")

	prefixes, err := k.OnLinkPrefixes()
	if err != nil || !slices.Equal(prefixes, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}) {
		t.Fatalf("OnLinkPrefixes = %v, %v", prefixes, err)
	}

	r := func(subnet, gw string) Route {
		return Route{Subnet: netip.MustParsePrefix(subnet), Gateway: netip.MustParseAddr(gw)}
	}
	want := []Route{r("10.244.2.0/24", "192.0.2.2"), r("10.244.3.0/24", "192.0.2.3")}
	c, err := k.Sync(want)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Blocked, []Route{r("10.244.3.0/24", "192.0.2.3")}) {
		t.Errorf("blocked = %v, want the subnet with a hand-made route", c.Blocked)
	}
	if !slices.Equal(c.Added, want[:1]) || !slices.Equal(c.Deleted, []netip.Prefix{netip.MustParsePrefix("10.244.9.0/24")}) {
		t.Errorf("changes %+v, want the peer's route added and the stale one deleted", c)
	}
	// Someone deletes weft's route: the next Sync puts it back.
	if out, err := ns.Run(context.Background(), "ip", "route", "del", "10.244.2.0/24", "proto", "119"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if c, err = k.Sync(want); err != nil || !slices.Equal(c.Added, want[:1]) || len(c.Deleted) != 0 {
		t.Errorf("after a hand delete: %+v, %v; want the route added again", c, err)
	}
	if c, err = k.Sync(want); err != nil || len(c.Added)+len(c.Deleted) != 0 {
		t.Errorf("Sync with nothing to do: %+v, %v", c, err)
	}
	table := ipRoutes(t, ns)
	for _, line := range []string{
		"10.244.2.0/24 via 192.0.2.2 dev eth0 proto 119",
		"10.99.0.0/16 via 192.0.2.50 dev eth0",
		"10.244.3.0/24 via 192.0.2.50 dev eth0 proto static",
	} {
		if !strings.Contains(table, line) {
			t.Errorf("route %q missing:\n%s", line, table)
		}
	}
	if strings.Contains(table, "10.244.9.0") {
		t.Errorf("stale weft route survived:\n%s", table)
	}

	// The peer moves; another appears.
	if _, err := k.Sync([]Route{r("10.244.2.0/24", "192.0.2.22"), r("10.244.4.0/24", "192.0.2.4")}); err != nil {
		t.Fatal(err)
	}
	owned, err := k.Owned()
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(owned, func(a, b Route) int { return a.Subnet.Compare(b.Subnet) })
	if !slices.Equal(owned, []Route{r("10.244.2.0/24", "192.0.2.22"), r("10.244.4.0/24", "192.0.2.4")}) {
		t.Errorf("owned after update = %v", owned)
	}

	// Stop: every weft route goes, the hand-made ones stay.
	if _, err := k.Sync(nil); err != nil {
		t.Fatal(err)
	}
	table = ipRoutes(t, ns)
	if strings.Contains(table, "proto 119") {
		t.Errorf("weft routes left after Sync(nil):\n%s", table)
	}
	for _, line := range []string{"10.99.0.0/16 via 192.0.2.50", "10.244.3.0/24 via 192.0.2.50 dev eth0 proto static"} {
		if !strings.Contains(table, line) {
			t.Errorf("hand-made route %q removed:\n%s", line, table)
		}
	}

	// With a source (an address of this host, as weftd's TUN address): the
	// route carries it as its preferred source, Owned reads it back, and a
	// route of ours without it (an older weft) is replaced.
	run("addr", "add", "10.244.7.0/32", "dev", "lo")
	run("route", "add", "10.244.2.0/24", "via", "192.0.2.2", "dev", "eth0", "proto", "119")
	sourced := []Route{withSource(r("10.244.2.0/24", "192.0.2.2"), "10.244.7.0")}
	if c, err := k.Sync(sourced); err != nil || !slices.Equal(c.Added, sourced) || len(c.Deleted) != 1 {
		t.Errorf("Sync with a source: %+v, %v; want the route without it replaced", c, err)
	}
	if table := ipRoutes(t, ns); !strings.Contains(table, "10.244.2.0/24 via 192.0.2.2 dev eth0 proto 119 src 10.244.7.0") {
		t.Errorf("route with the source missing:\n%s", table)
	}
	if owned, err := k.Owned(); err != nil || !slices.Equal(owned, sourced) {
		t.Errorf("Owned = %v, %v; want %v", owned, err, sourced)
	}
	if c, err := k.Sync(sourced); err != nil || len(c.Added)+len(c.Deleted) != 0 {
		t.Errorf("Sync with a source, nothing to do: %+v, %v", c, err)
	}
	if _, err := k.Sync(nil); err != nil {
		t.Fatal(err)
	}

	// A gateway off the link is refused by the kernel, reported as an error.
	if _, err := k.Sync([]Route{r("10.244.5.0/24", "198.51.100.5")}); err == nil {
		t.Error("route via an off-link gateway accepted")
	}
}
