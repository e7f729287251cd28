//go:build !unit

package guard

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/weftnet/weft/testbed"
)

// TestIPv6GuardInNamespaces: a host namespace with the bridge
// (fd10:244:1::/64, this node's IPv6 subnet of fd10:244::/32), two
// containers on it, and a routed "underlay" neighbour (2001:db8:2::2).
// A container with CAP_NET_RAW (root in its namespace: it adds any address
// and sends from it) cannot send IPv6 with a source outside its node's
// subnet, another node's container's or an underlay address, through or to
// its host, and cannot reach weft's UDP port on the host (any of its
// addresses, the bridge's link-local one too) or outside the overlay
// network; its own traffic and UDP to that port between containers pass.
func TestIPv6GuardInNamespaces(t *testing.T) {
	if err := testbed.CheckRoot(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h, c, d, r := testbed.NSForTest(t, "wg6h"), testbed.NSForTest(t, "wg6c"), testbed.NSForTest(t, "wg6d"), testbed.NSForTest(t, "wg6r")
	run := func(n *testbed.NS, args ...string) string {
		t.Helper()
		out, err := n.Run(ctx, args[0], args[1:]...)
		if err != nil {
			t.Fatalf("%s: %s: %v\n%s", n.Name, strings.Join(args, " "), err, out)
		}
		return out
	}
	run(h, "ip", "link", "add", "weftbr0", "type", "bridge")
	run(h, "ip", "addr", "add", "fd10:244:1::1/64", "dev", "weftbr0", "nodad")
	run(h, "ip", "link", "set", "weftbr0", "up")
	run(h, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	for i, n := range []*testbed.NS{c, d} {
		veth := "v" + string(rune('c'+i))
		run(h, "ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", n.Name)
		run(h, "ip", "link", "set", veth, "master", "weftbr0", "up")
		run(n, "ip", "addr", "add", "fd10:244:1::"+string(rune('2'+i))+"/64", "dev", "eth0", "nodad")
		run(n, "ip", "link", "set", "eth0", "up")
		run(n, "ip", "-6", "route", "add", "default", "via", "fd10:244:1::1")
	}
	run(h, "ip", "link", "add", "under", "type", "veth", "peer", "name", "eth0", "netns", r.Name)
	run(h, "ip", "addr", "add", "2001:db8:2::1/64", "dev", "under", "nodad")
	run(h, "ip", "link", "set", "under", "up")
	run(r, "ip", "addr", "add", "2001:db8:2::2/64", "dev", "eth0", "nodad")
	run(r, "ip", "link", "set", "eth0", "up")
	run(r, "ip", "-6", "route", "add", "fd10:244::/32", "via", "2001:db8:2::1")
	run(r, "ip", "-6", "route", "add", "2001:db8:ffff::/64", "via", "2001:db8:2::1")

	f, err := os.Open(h.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	opts := Options{NetNS: int(f.Fd())}
	spec := Spec{Bridge: "weftbr0", Subnet: netip.MustParsePrefix("10.244.1.0/24"), Network: netip.MustParsePrefix("10.244.0.0/16"),
		Subnet6: netip.MustParsePrefix("fd10:244:1::/64"), Network6: netip.MustParsePrefix("fd10:244::/32"), Port: 8285}

	bridgeLL := linkLocalOf(t, h, "weftbr0")
	// Listeners: the underlay neighbour on 9999 and 8285, the host and
	// container d on 8285.
	got := map[string]chan string{}
	listen := func(n *testbed.NS, name string, port uint16) {
		var pc net.PacketConn
		if err := ns.WithNetNSPath(n.Path(), func(ns.NetNS) error {
			var err error
			pc, err = net.ListenPacket("udp6", netip.AddrPortFrom(netip.IPv6Unspecified(), port).String())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		ch := make(chan string, 64)
		got[name] = ch
		go func() {
			buf := make([]byte, 64)
			for {
				n, _, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				ch <- string(buf[:n])
			}
		}()
	}
	listen(r, "r9999", 9999)
	listen(r, "r8285", 8285)
	listen(h, "h8285", 8285)
	listen(d, "d8285", 8285)
	send := func(src netip.Addr, dst netip.AddrPort, msg string) {
		t.Helper()
		if src.IsValid() && !src.Is6() {
			t.Fatal("IPv6 only")
		}
		if err := ns.WithNetNSPath(c.Path(), func(ns.NetNS) error {
			var laddr *net.UDPAddr
			if src.IsValid() {
				laddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
			}
			conn, err := net.DialUDP("udp6", laddr, net.UDPAddrFromAddrPort(dst))
			if err != nil {
				return err
			}
			defer conn.Close()
			for range 3 {
				if _, err := conn.Write([]byte(msg)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatalf("send %s from %s to %s: %v", msg, src, dst, err)
		}
	}
	// c (with CAP_NET_RAW: root in its namespace) holds forged addresses.
	forged := []netip.Addr{netip.MustParseAddr("fd10:244:2::9"), netip.MustParseAddr("2001:db8:ffff::7")}
	for _, a := range forged {
		run(c, "ip", "addr", "add", a.String()+"/128", "dev", "eth0", "nodad")
	}
	own := netip.MustParseAddr("fd10:244:1::2")
	type flow struct {
		src      netip.Addr
		dst      netip.AddrPort
		listener string
		pass     bool // with the guard
	}
	flows := []flow{
		{own, netip.MustParseAddrPort("[2001:db8:2::2]:9999"), "r9999", true},
		{forged[0], netip.MustParseAddrPort("[2001:db8:2::2]:9999"), "r9999", false},
		{forged[1], netip.MustParseAddrPort("[2001:db8:2::2]:9999"), "r9999", false},
		{own, netip.MustParseAddrPort("[fd10:244:1::1]:8285"), "h8285", false},
		{netip.Addr{}, netip.AddrPortFrom(bridgeLL.WithZone("eth0"), 8285), "h8285", false},
		{own, netip.MustParseAddrPort("[2001:db8:2::1]:8285"), "h8285", false},
		{own, netip.MustParseAddrPort("[2001:db8:2::2]:8285"), "r8285", false},
		{own, netip.MustParseAddrPort("[fd10:244:1::3]:8285"), "d8285", true},
	}
	check := func(guarded bool) {
		t.Helper()
		for i, fl := range flows {
			msg := strings.Repeat("x", i+1)
			if guarded {
				msg = strings.Repeat("g", i+1)
			}
			send(fl.src, fl.dst, msg)
			want := fl.pass || !guarded
			arrived := false
			deadline := time.After(1500 * time.Millisecond)
		wait:
			for {
				select {
				case m := <-got[fl.listener]:
					if m == msg {
						arrived = true
						break wait
					}
				case <-deadline:
					break wait
				}
			}
			if arrived != want {
				t.Errorf("guard %v: %s -> %s: arrived %v, want %v", guarded, fl.src, fl.dst, arrived, want)
			}
		}
	}
	// The paths are up (neighbours resolved, bridge ports forwarding)
	// before anything is judged.
	for _, dst := range []string{"2001:db8:2::2", "fd10:244:1::3", "fd10:244:1::1"} {
		for try := 0; ; try++ {
			if _, err := c.Run(ctx, "ping", "-6", "-c", "1", "-W", "1", "-I", "fd10:244:1::2", dst); err == nil {
				break
			} else if try == 20 {
				t.Fatalf("c cannot ping %s: %v", dst, err)
			}
		}
	}
	check(false) // the paths work without the guard
	if err := Install(spec, opts); err != nil {
		t.Fatal(err)
	}
	defer Remove(opts)
	check(true)
	drops, err := Drops(opts)
	if err != nil {
		t.Fatal(err)
	}
	if drops[ReasonSpoofedSource] < 6 || drops[ReasonWeftPort] < 12 {
		t.Errorf("drops %v: want the forged sources and the datagrams to weft's port counted", drops)
	}
}

// linkLocalOf is dev's link-local address in n, with its zone.
func linkLocalOf(t *testing.T, n *testbed.NS, dev string) netip.Addr {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err := n.Run(context.Background(), "ip", "-6", "-o", "addr", "show", "dev", dev, "scope", "link")
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(out)
		for i := range f {
			if f[i] == "inet6" && i+1 < len(f) && !strings.Contains(out, "tentative") {
				p, err := netip.ParsePrefix(f[i+1])
				if err != nil {
					t.Fatal(err)
				}
				return p.Addr()
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no link-local address on %s %s: %q", n.Name, dev, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
