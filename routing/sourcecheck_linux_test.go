//go:build !unit

package routing

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"
)

func TestSourceCheckRules(t *testing.T) {
	_, ns := kernelInNS(t)
	nsh, err := netns.GetFromPath(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer nsh.Close()
	// A table left by an earlier run is replaced. (nft prints the rule
	// without "iiftype ether": the ether match implies it.)
	if out, err := ns.Run(context.Background(), "nft", "add table ip weft-direct; add chain ip weft-direct old"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	s, err := NewSourceCheck("eth0", nftables.WithNetNSFd(int(nsh)))
	if err != nil {
		t.Fatal(err)
	}
	list := func() string {
		t.Helper()
		out, err := ns.Run(context.Background(), "nft", "list", "table", "ip", "weft-direct")
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if out := list(); strings.Contains(out, "old") || !strings.Contains(out, "hook prerouting priority raw") {
		t.Errorf("fresh table:\n%s", out)
	}
	mac, _ := net.ParseMAC("02:00:00:00:00:02")
	bindings := []Binding{{Subnet: netip.MustParsePrefix("10.244.2.0/24"), MAC: mac}}
	if err := s.Set(bindings); err != nil {
		t.Fatal(err)
	}
	want := `iifname "eth0" ip saddr 10.244.2.0/24 ether saddr != 02:00:00:00:00:02 counter name "wrong-l2-source" drop`
	if out := list(); !strings.Contains(out, want) {
		t.Errorf("rule missing, want %q in:\n%s", want, out)
	}
	if err := s.Set(bindings); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(list(), "drop"); n != 1 {
		t.Errorf("%d rules after setting the same bindings twice, want 1", n)
	}
	if n, err := s.Dropped(); err != nil || n != 0 {
		t.Errorf("Dropped = %d, %v", n, err)
	}
	if err := s.Set([]Binding{{Subnet: netip.MustParsePrefix("10.244.3.0/24"), MAC: net.HardwareAddr{1, 2}}}); err == nil {
		t.Error("a binding with a 2-byte MAC accepted")
	}
	if err := s.Set(nil); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(list(), "drop") {
		t.Errorf("rules left after Set(nil):\n%s", list())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if out, err := ns.Run(context.Background(), "nft", "list", "tables"); err != nil || strings.Contains(out, "weft-direct") {
		t.Errorf("table left after Close: %q %v", out, err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
