//go:build !unit

package policy

import (
	"net"
	"slices"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	xipv6 "golang.org/x/net/ipv6"
)

// TestICMPv6NeighbourTypesAreNoTunnel: under deny-all ingress, a container
// of another node (r, routed) sends ICMPv6 messages of the neighbour
// discovery and multicast listener types (which pass whatever the policy,
// so an isolated container keeps its neighbours) with a payload to the
// isolated x/a's global address, where a raw ICMPv6 socket reads them: a
// tunnel past the policy. Real neighbour discovery has hop limit 255 and
// multicast listener messages hop limit 1 (RFC 4861 7.1.1, RFC 3810 5):
// what another node sends arrives forwarded (hop limit decremented), so
// none of it may pass. The same messages from a neighbour on the bridge
// with the right hop limit still pass (TestNeighbourDiscoveryUnderDenyAll
// covers that they are needed).
func TestICMPv6NeighbourTypesAreNoTunnel(t *testing.T) {
	nd := newNode(t)
	e := NewEnforcer(EnforcerOptions{NetNS: int(nd.nsFd.Fd()), Bridge: testBridge})
	defer e.Remove()
	dst := nd.ips6["a"]
	var pc net.PacketConn
	err := ns.WithNetNSPath(nd.ctrs["a"].Path(), func(ns.NetNS) error {
		var err error
		pc, err = net.ListenPacket("ip6:ipv6-icmp", dst.String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	got := make(chan byte, 64)
	go func() {
		buf := make([]byte, 1500)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			// payload marker "TUNNEL" after the 8-byte header
			if n >= 14 && string(buf[8:14]) == "TUNNEL" {
				got <- buf[0]
			}
		}
	}()
	send := func(from string, hopLimit int) {
		t.Helper()
		err := ns.WithNetNSPath(nd.ctrs[from].Path(), func(ns.NetNS) error {
			c, err := net.ListenPacket("ip6:ipv6-icmp", "::")
			if err != nil {
				return err
			}
			defer c.Close()
			p := xipv6.NewPacketConn(c)
			if err := p.SetHopLimit(hopLimit); err != nil {
				return err
			}
			for _, ty := range ndTypes {
				msg := append([]byte{ty, 0, 0, 0, 0, 0, 0, 0}, "TUNNEL: data past the policy"...)
				for range 2 {
					if _, err := c.WriteTo(msg, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	collect := func() []byte {
		received := map[byte]bool{}
		deadline := time.After(3 * time.Second)
		for {
			select {
			case ty := <-got:
				received[ty] = true
			case <-deadline:
				var types []byte
				for ty := range received {
					types = append(types, ty)
				}
				slices.Sort(types)
				return types
			}
		}
	}
	// Control: with no policy the messages reach x/a's raw socket.
	send("r", 255)
	if types := collect(); len(types) == 0 {
		t.Fatal("with no policy, x/a received none of r's ICMPv6 messages: the test path does not work")
	}
	nd.apply(t, e, np+"metadata: {name: d, namespace: x}\nspec: {podSelector: {}, policyTypes: [Ingress]}")
	send("r", 255)
	send("r", 2) // arrives with hop limit 1, as a multicast listener message
	if types := collect(); len(types) > 0 {
		t.Errorf("isolated x/a received ICMPv6 of types %v with a payload from another node (r): a tunnel past deny-all", types)
	}
}
