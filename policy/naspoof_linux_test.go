//go:build !unit

package policy

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	xipv6 "golang.org/x/net/ipv6"
)

// sendGatewayNA sends from container from an unsolicited neighbour
// advertisement (override flag) claiming target for its own MAC, to the
// container address to, with hop limit 255.
func sendGatewayNA(t *testing.T, nd *node, from, to, target string) {
	t.Helper()
	err := ns.WithNetNSPath(nd.ctrs[from].Path(), func(ns.NetNS) error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		c, err := net.ListenPacket("ip6:ipv6-icmp", "::")
		if err != nil {
			return err
		}
		defer c.Close()
		p := xipv6.NewPacketConn(c)
		if err := p.SetHopLimit(255); err != nil {
			return err
		}
		msg := []byte{136, 0, 0, 0, 0x20, 0, 0, 0} // override
		msg = append(msg, net.ParseIP(target).To16()...)
		msg = append(msg, 2, 1) // target link-layer address
		msg = append(msg, ifi.HardwareAddr...)
		for range 3 {
			if _, err := p.WriteTo(msg, nil, &net.IPAddr{IP: net.ParseIP(to)}); err != nil {
				return err
			}
			time.Sleep(100 * time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestGatewayNeighbourAdvertisementSpoofDropped: y/c claims the IPv6
// gateway (the bridge's fd10:244:1::1) with an unsolicited neighbour
// advertisement to x/a: with no bridge table x/a's entry for the gateway
// takes c's MAC (the attack works: x/a's IPv6 traffic would go to c); with
// the Enforcer's bridge table (no policy at all) it is dropped at c's
// port, counted as spoofed, and x/a keeps the bridge's MAC.
func TestGatewayNeighbourAdvertisementSpoofDropped(t *testing.T) {
	nd := newNode(t)
	ctx := context.Background()
	gw, victim := nd.hostIP6.String(), nd.ips6["a"].String()
	cMAC := func() string {
		out, err := nd.ctrs["c"].Run(ctx, "cat", "/sys/class/net/eth0/address")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}()
	entry := func() string {
		t.Helper()
		if _, err := nd.ctrs["a"].Run(ctx, "ping", "-6", "-c", "1", "-W", "2", gw); err != nil {
			t.Fatalf("x/a cannot ping its gateway: %v", err)
		}
		out, err := nd.ctrs["a"].Run(ctx, "ip", "-6", "neigh", "show", gw, "dev", "eth0")
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	reset := func() {
		t.Helper()
		if _, err := nd.ctrs["a"].Run(ctx, "ip", "-6", "neigh", "flush", "all"); err != nil {
			t.Fatal(err)
		}
		if e := entry(); strings.Contains(e, cMAC) {
			t.Fatalf("x/a's gateway entry is c's before the attack: %s", e)
		}
	}

	reset()
	sendGatewayNA(t, nd, "c", victim, gw)
	out, err := nd.ctrs["a"].Run(ctx, "ip", "-6", "neigh", "show", gw, "dev", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, cMAC) {
		t.Fatalf("control: with no bridge table x/a's gateway entry did not take c's MAC %s: %s (the attack does not work here)", cMAC, out)
	}

	e := NewEnforcer(EnforcerOptions{NetNS: int(nd.nsFd.Fd()), Bridge: testBridge})
	defer e.Remove()
	nd.apply(t, e, "")
	reset()
	before, err := e.Drops()
	if err != nil {
		t.Fatal(err)
	}
	sendGatewayNA(t, nd, "c", victim, gw)
	out, err = nd.ctrs["a"].Run(ctx, "ip", "-6", "neigh", "show", gw, "dev", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, cMAC) {
		t.Errorf("x/a's gateway entry took c's MAC %s through the bridge table: %s", cMAC, out)
	}
	if after, err := e.Drops(); err != nil || after.Spoofed <= before.Spoofed {
		t.Errorf("spoofed drops %d -> %d (%v): want the advertisements counted", before.Spoofed, after.Spoofed, err)
	}
}
