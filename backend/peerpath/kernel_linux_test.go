//go:build !unit

package peerpath

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/weftnet/weft/overlay"
	"github.com/weftnet/weft/routing"
	"github.com/weftnet/weft/testbed"
)

// These tests run the reconciler against the real kernel (root, a
// namespace); reconcile_test.go runs the same steps against fakes.

// kernelInNS is a routing.Kernel in a fresh namespace whose eth0 (one end
// of a veth pair) has 192.0.2.1/24.
func kernelInNS(t *testing.T) (*routing.Kernel, *testbed.NS) {
	t.Helper()
	ns := testbed.NSForTest(t, "wpp")
	for _, args := range [][]string{
		{"link", "add", "eth0", "type", "veth", "peer", "name", "eth0p"},
		{"addr", "add", "192.0.2.1/24", "dev", "eth0"},
		{"link", "set", "eth0", "up"},
		{"link", "set", "eth0p", "up"},
	} {
		if out, err := ns.Run(context.Background(), "ip", args...); err != nil {
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
	k, err := routing.NewKernel(h, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	return k, ns
}

func newTestPaths(t *testing.T, policy routing.Policy, k *routing.Kernel, source netip.Addr) (*Paths, *overlay.PeerTable, func() ([]routing.Route, error)) {
	t.Helper()
	table := newTable(t)
	c := Config{Policy: policy, Table: table, Source: source, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	var err error
	if c.OnLink, err = k.OnLinkPrefixes(); err != nil {
		t.Fatal(err)
	}
	c.Routes = k
	return New(c), table, k.Owned
}

func TestPeerPathsDirectRouting(t *testing.T) {
	k, ns := kernelInNS(t)
	// Someone's route holds 10.244.3.0/24 already.
	if out, err := ns.Run(context.Background(), "ip", "route", "add", "10.244.3.0/24", "via", "192.0.2.50", "dev", "eth0"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	p, table, owned := newTestPaths(t, routing.Policy{DirectRouting: true}, k, netip.Addr{})
	steps := directRoutingSteps()
	for _, s := range steps {
		p.Apply(s.snapshot, s.events)
		if got := describe(t, p, table, owned); got != s.want {
			t.Errorf("%s:\n got  %s\n want %s", s.name, got, s.want)
		}
	}
	p.Clear()
	if routes, err := k.Owned(); err != nil || len(routes) != 0 {
		t.Errorf("after close: weft routes %v, %v", routes, err)
	}
	out, _ := ns.Run(context.Background(), "ip", "route", "show", "10.244.3.0/24")
	if !strings.Contains(out, "via 192.0.2.50") {
		t.Errorf("the foreign route was touched: %q", out)
	}
}

func TestPeerPathsHostGW(t *testing.T) {
	k, ns := kernelInNS(t)
	// The routes' preferred source is this node's TUN address (here on lo).
	if out, err := ns.Run(context.Background(), "ip", "addr", "add", "10.244.9.0/32", "dev", "lo"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	p, table, owned := newTestPaths(t, routing.Policy{HostGW: true}, k, netip.MustParseAddr("10.244.9.0"))
	p.Apply(hostGWSnapshot(), nil)
	want := hostGWWant
	if got := describe(t, p, table, owned); got != want {
		t.Errorf("\n got  %s\n want %s", got, want)
	}
	p.Clear()
}
