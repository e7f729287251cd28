//go:build !unit

package overlay

import (
	"context"
	"strings"
	"testing"
	"time"
)

// Issue 24 item 7: weft0 got an IPv6 link-local address, and the kernel
// sent router solicitations into it, which an idle node counted as
// tx_drops.not_ipv4 (a newcomer's first `weftctl status` showed drops).
// Now an idle node's TUN has no IPv6 address (address generation mode
// none, IPv6 itself left on) and the data path sees nothing to drop.
func TestIdleNodeDropsNothing(t *testing.T) {
	a, b := newPair(t)
	// The kernel solicits routers once the link-local address passed
	// duplicate address detection (1 s), within a second, then every 4 s.
	time.Sleep(7 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, n := range []*node{a, b} {
		st := n.overlay.Stats()
		for r, d := range st.TX.Drops {
			if d != 0 {
				t.Errorf("%s: idle node dropped %d packets from the TUN (%s)", n.ns, d, DropReason(r))
			}
		}
		if st.TX.Packets != 0 {
			t.Errorf("%s: idle node forwarded %d packets from the TUN", n.ns, st.TX.Packets)
		}
		out, err := n.exec(ctx, "ip", "-6", "addr", "show", "dev", DefaultDeviceName)
		if err != nil || strings.Contains(out, "inet6") {
			t.Errorf("%s: %s has an IPv6 address (%v):\n%s", n.ns, DefaultDeviceName, err, out)
		}
		out, err = n.exec(ctx, "ip", "-d", "link", "show", "dev", DefaultDeviceName)
		if err != nil || !strings.Contains(out, "addrgenmode none") {
			t.Errorf("%s: %s's IPv6 address generation mode is not none (%v):\n%s", n.ns, DefaultDeviceName, err, out)
		}
		out, err = n.exec(ctx, "sysctl", "-n", "net.ipv6.conf."+DefaultDeviceName+".disable_ipv6")
		if err != nil || strings.TrimSpace(out) != "0" {
			t.Errorf("%s: IPv6 on %s is disabled (%q, %v): it must stay available", n.ns, DefaultDeviceName, out, err)
		}
	}
}
