//go:build !unit

package cni_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/net/ipv6"
)

// rogueRA is a router advertisement: router lifetime 1800 s (a default
// route) and a prefix information option for 2001:db8:bad::/64 with the
// on-link and autonomous flags (an address by SLAAC).
func rogueRA() []byte {
	msg := []byte{134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0}
	opt := []byte{3, 4, 64, 0xc0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0,
		0x20, 0x01, 0x0d, 0xb8, 0x0b, 0xad, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	return append(msg, opt...)
}

// sendRogueRA sends rogueRA to all nodes (ff02::1) out of the container's
// eth0 with hop limit 255, as a container with CAP_NET_RAW can, a few
// times over 3 s (its link-local address may still be tentative).
func sendRogueRA(t *testing.T, ctr netns) {
	t.Helper()
	err := ns.WithNetNSPath(ctr.path(), func(ns.NetNS) error {
		c, err := net.ListenPacket("ip6:ipv6-icmp", "::")
		if err != nil {
			return err
		}
		defer c.Close()
		p := ipv6.NewPacketConn(c)
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		if err := p.SetMulticastHopLimit(255); err != nil {
			return err
		}
		if err := p.SetMulticastInterface(ifi); err != nil {
			return err
		}
		sent := 0
		var lastErr error
		for range 20 {
			if _, err := p.WriteTo(rogueRA(), nil, &net.IPAddr{IP: net.ParseIP("ff02::1"), Zone: "eth0"}); err != nil {
				lastErr = err // the link-local address still tentative
			} else if sent++; sent == 3 {
				return nil
			}
			time.Sleep(300 * time.Millisecond)
		}
		return fmt.Errorf("%d sent: %w", sent, lastErr)
	})
	if err != nil {
		t.Fatalf("send a router advertisement from %s: %v", ctr.name, err)
	}
}

// TestRogueRouterAdvertisementIgnored: a container sends router
// advertisements onto the bridge (a default route and a SLAAC prefix).
// Neither the node nor the other containers may take a route or an
// address from it, on an IPv4-only network as on a dual-stack one, on a
// host whose interfaces take router advertisements even when forwarding
// (default accept_ra=2, as hosts that get their own IPv6 by SLAAC while
// running containers have it).
func TestRogueRouterAdvertisementIgnored(t *testing.T) {
	for _, tc := range []struct{ name, env string }{
		{"ipv4-only network", subnetEnv("10.244.7.1/24")},
		{"dual-stack network", dualEnv},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHostWithEnv(t, tc.env, nil)
			h.ns.exec(t, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=0")
			h.ns.exec(t, "sysctl", "-qw", "net.ipv6.conf.default.accept_ra=2")
			h.ns.exec(t, "sysctl", "-qw", "net.ipv6.conf.all.accept_ra=2")
			attacker, _ := h.add(t)
			victim, _ := h.add(t)
			sendRogueRA(t, attacker)
			time.Sleep(time.Second)
			for _, n := range []struct {
				who string
				ns  netns
				dev string
			}{{"the node", h.ns, "weftbr0"}, {"another container", victim, "eth0"}} {
				routes := n.ns.exec(t, "ip", "-6", "route", "show", "default")
				addrs := n.ns.exec(t, "ip", "-6", "addr", "show", "dev", n.dev)
				if strings.Contains(routes, "fe80:") || strings.Contains(addrs, "2001:db8:bad") {
					t.Errorf("%s took the rogue router advertisement:\nroutes: %s\naddresses on %s: %s", n.who, routes, n.dev, addrs)
				}
			}
			if ra := strings.TrimSpace(h.ns.exec(t, "sysctl", "-n", "net.ipv6.conf.weftbr0.accept_ra")); ra != "0" {
				t.Errorf("the bridge's accept_ra is %s, want 0", ra)
			}
		})
	}
}
