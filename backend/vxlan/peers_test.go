package vxlan

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/weftnet/weft/subnet"
)

func lease(sn, ip, typ, data string) subnet.Lease {
	return subnet.Lease{Subnet: netip.MustParsePrefix(sn), Attrs: subnet.LeaseAttrs{PublicIP: ip, BackendType: typ, BackendData: json.RawMessage(data)}}
}

// Other nodes' leases: flanneld's vxlan leases become peers (direct when
// DirectRouting and on the L2); another backend, malformed data, another
// VNI, a bad PublicIP and this node's own VtepMAC are skipped with their
// reason.
func TestPeersOf(t *testing.T) {
	own := MAC{0x0a, 0, 0, 0, 0, 0xee}
	leases := []subnet.Lease{
		lease("10.244.2.0/24", "192.0.2.2", "vxlan", `{"VNI":1,"VtepMAC":"0a:00:00:00:00:02"}`),
		lease("10.244.3.0/24", "198.51.100.3", "vxlan", `{"VNI":1,"VtepMAC":"0a:00:00:00:00:03"}`),
		lease("10.244.4.0/24", "192.0.2.4", "udp", `{"Port":8285}`),
		lease("10.244.5.0/24", "192.0.2.5", "vxlan", `{"VNI":1,"VtepMAC":"not-a-mac"}`),
		lease("10.244.6.0/24", "192.0.2.6", "vxlan", `{"VNI":2,"VtepMAC":"0a:00:00:00:00:06"}`),
		lease("10.244.7.0/24", "nope", "vxlan", `{"VNI":1,"VtepMAC":"0a:00:00:00:00:07"}`),
		lease("10.244.8.0/24", "192.0.2.8", "vxlan", `{"VNI":1,"VtepMAC":"0a:00:00:00:00:ee"}`),
	}
	cfg := Config{VNI: 1, Port: DefaultPort, DirectRouting: true}
	peers, skips := PeersOf(leases, cfg, own, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")})
	if len(peers) != 2 || !peers[0].Direct || peers[1].Direct || peers[0].VtepMAC != (MAC{0x0a, 0, 0, 0, 0, 2}) {
		t.Fatalf("peers %+v", peers)
	}
	want := []string{SkipBackend, SkipData, SkipVNI, SkipPublicIP, SkipMAC}
	if len(skips) != len(want) {
		t.Fatalf("skips %+v", skips)
	}
	for i, s := range skips {
		if s.Reason != want[i] {
			t.Errorf("skip %d: %+v, want reason %s", i, s, want[i])
		}
	}
	cfg.DirectRouting = false
	if peers, _ := PeersOf(leases, cfg, own, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}); peers[0].Direct {
		t.Fatal("direct without DirectRouting")
	}
}

// The IPv6 side of dual-stack leases (flanneld's PublicIPv6 and
// BackendV6Data): peers by IPv6 subnet; a lease without an IPv6 side or
// of another backend left out silently (reported elsewhere); a bad
// PublicIPv6 (an IPv4 one included), malformed data, another VNI and this
// node's own IPv6 MAC skipped with their reason. With DirectRouting a
// peer whose PublicIPv6 is on the underlay's IPv6 prefix is direct (as
// flanneld's IPv6 side), an IPv4 prefix makes no IPv6 peer direct.
func TestPeersOf6(t *testing.T) {
	own := MAC{0x0a, 0, 0, 0, 0, 0xee}
	v6 := func(sn, sn6, ip6, data string) subnet.Lease {
		l := lease(sn, "192.0.2.9", "vxlan", `{"VNI":1,"VtepMAC":"0a:00:00:00:00:09"}`)
		if sn6 != "" {
			l.IPv6Subnet = netip.MustParsePrefix(sn6)
		}
		l.Attrs.PublicIPv6, l.Attrs.BackendV6Data = ip6, json.RawMessage(data)
		return l
	}
	leases := []subnet.Lease{
		v6("10.244.2.0/24", "fd10:244:0:2::/64", "2001:db8::2", `{"VNI":1,"VtepMAC":"0a:00:00:00:01:02"}`),
		v6("10.244.3.0/24", "", "", ""),
		lease("10.244.4.0/24", "192.0.2.4", "udp", `{"Port":8285}`),
		v6("10.244.5.0/24", "fd10:244:0:5::/64", "192.0.2.5", `{"VNI":1,"VtepMAC":"0a:00:00:00:01:05"}`),
		v6("10.244.6.0/24", "fd10:244:0:6::/64", "2001:db8::6", `{"VNI":1,"VtepMAC":"zz"}`),
		v6("10.244.7.0/24", "fd10:244:0:7::/64", "2001:db8::7", `{"VNI":3,"VtepMAC":"0a:00:00:00:01:07"}`),
		v6("10.244.8.0/24", "fd10:244:0:8::/64", "2001:db8::8", `{"VNI":1,"VtepMAC":"0a:00:00:00:00:ee"}`),
	}
	onLink4 := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	peers, skips := PeersOf6(leases, Config{VNI: 1, Port: DefaultPort, DirectRouting: true}, own, onLink4, false)
	if len(peers) != 1 || peers[0].Subnet != netip.MustParsePrefix("fd10:244:0:2::/64") || peers[0].PublicIP != netip.MustParseAddr("2001:db8::2") ||
		peers[0].Direct || peers[0].VtepMAC != (MAC{0x0a, 0, 0, 0, 1, 2}) {
		t.Fatalf("peers %+v", peers)
	}
	onLink := append(onLink4, netip.MustParsePrefix("2001:db8::/64"))
	if peers, _ := PeersOf6(leases, Config{VNI: 1, Port: DefaultPort, DirectRouting: true}, own, onLink, false); len(peers) != 1 || !peers[0].Direct {
		t.Fatalf("DirectRouting, peer on the IPv6 prefix: %+v, want direct", peers)
	}
	if peers, _ := PeersOf6(leases, Config{VNI: 1, Port: DefaultPort}, own, onLink, false); len(peers) != 1 || peers[0].Direct {
		t.Fatalf("no DirectRouting: %+v, want through the device", peers)
	}
	want := []string{SkipPublicIP, SkipData, SkipVNI, SkipMAC}
	if len(skips) != len(want) {
		t.Fatalf("skips %+v", skips)
	}
	for i, s := range skips {
		if s.Reason != want[i] || s.Subnet.Addr().Is4() {
			t.Errorf("skip %d: %+v, want reason %s on the IPv6 subnet", i, s, want[i])
		}
	}
}

// An IPv6-only network's leases, as flanneld writes them (no IPv4 subnet,
// no PublicIP, no BackendData; PublicIPv6 and BackendV6Data): peers by
// IPv6 subnet; here a lease of another backend is reported (there is no
// IPv4 side to report it), and one with BackendData only (no IPv6 side's
// data) is skipped as malformed.
func TestPeersOf6IPv6Only(t *testing.T) {
	own := MAC{0x0a, 0, 0, 0, 0, 0xee}
	v6 := func(sn6, ip6, typ, data, data6 string) subnet.Lease {
		return subnet.Lease{IPv6Subnet: netip.MustParsePrefix(sn6), Attrs: subnet.LeaseAttrs{PublicIPv6: ip6, BackendType: typ,
			BackendData: json.RawMessage(data), BackendV6Data: json.RawMessage(data6)}}
	}
	leases := []subnet.Lease{
		v6("fd10:244:0:3::/64", "2001:db8::3", "vxlan", "", `{"VNI":1,"VtepMAC":"0a:00:00:00:01:03"}`),
		v6("fd10:244:0:2::/64", "2001:db8::2", "vxlan", "", `{"VNI":1,"VtepMAC":"0a:00:00:00:01:02"}`),
		v6("fd10:244:0:4::/64", "2001:db8::4", "udp", `{"Port":8285}`, ""),
		v6("fd10:244:0:5::/64", "2001:db8::5", "vxlan", `{"VNI":1,"VtepMAC":"0a:00:00:00:01:05"}`, ""),
	}
	peers, skips := PeersOf6(leases, Config{VNI: 1, Port: DefaultPort}, own, nil, true)
	if len(peers) != 2 || peers[0].Subnet != netip.MustParsePrefix("fd10:244:0:2::/64") || peers[1].PublicIP != netip.MustParseAddr("2001:db8::3") {
		t.Fatalf("peers %+v", peers)
	}
	if len(skips) != 2 || skips[0].Reason != SkipBackend || skips[1].Reason != SkipData || skips[1].Subnet != netip.MustParsePrefix("fd10:244:0:5::/64") {
		t.Fatalf("skips %+v", skips)
	}
	// PeersOf (the IPv4 side) finds nothing to do in such leases: every
	// one has no usable PublicIP. The backend does not call it without an
	// IPv4 device; this shows it would not make a peer of them.
	if peers, _ := PeersOf(leases, Config{VNI: 1, Port: DefaultPort}, own, nil); len(peers) != 0 {
		t.Fatalf("IPv4 peers of IPv6-only leases: %+v", peers)
	}
}

// Two leases naming one IPv6 subnet (a dual-stack network names a lease
// by its IPv4 subnet, so a stray writer's "10.244.9.0-24&<a peer's IPv6
// subnet>" is another lease): one peer per subnet, the one kept before
// whatever the order or the newcomer's address; between newcomers the
// lowest PublicIP, in any order; the other skipped as SkipSubnet.
func TestOnePerSubnet(t *testing.T) {
	sn := netip.MustParsePrefix("fd10:244:0:2::/64")
	real := Peer{Subnet: sn, PublicIP: netip.MustParseAddr("2001:db8::2"), VtepMAC: MAC{2, 0, 0, 0, 0, 2}, Lease: netip.MustParsePrefix("10.244.2.0/24")}
	stray := Peer{Subnet: sn, PublicIP: netip.MustParseAddr("2001:db8::1:9"), VtepMAC: MAC{2, 0, 0, 0, 0, 9}, Lease: netip.MustParsePrefix("10.244.9.0/24")}
	early := Peer{Subnet: sn, PublicIP: netip.MustParseAddr("2001:db8::1"), VtepMAC: MAC{2, 0, 0, 0, 0, 1}, Lease: netip.MustParsePrefix("10.244.1.0/24")}
	other := Peer{Subnet: netip.MustParsePrefix("fd10:244:0:3::/64"), PublicIP: netip.MustParseAddr("2001:db8::3"), VtepMAC: MAC{2, 0, 0, 0, 0, 3}}
	for _, order := range [][]Peer{{real, stray, other}, {stray, real, other}} {
		kept, skips := OnePerSubnet(order, nil)
		if len(kept) != 2 || kept[0] != real || kept[1] != other || len(skips) != 1 || skips[0].Reason != SkipSubnet || skips[0].Subnet != sn {
			t.Fatalf("newcomers %v: kept %+v, skips %+v", order, kept, skips)
		}
	}
	// The subnet's holder keeps it against a lower address written later.
	prev := map[netip.Prefix]Peer{sn: real}
	for _, order := range [][]Peer{{real, early}, {early, real}} {
		if kept, skips := OnePerSubnet(order, prev); len(kept) != 1 || kept[0] != real || len(skips) != 1 || !strings.Contains(skips[0].Detail, "2001:db8::1 ") {
			t.Fatalf("held: kept %+v, skips %+v", kept, skips)
		}
	}
	// The holder gone: the remaining one takes over.
	if kept, skips := OnePerSubnet([]Peer{stray}, prev); len(kept) != 1 || kept[0] != stray || len(skips) != 0 {
		t.Fatalf("holder gone: kept %+v, skips %+v", kept, skips)
	}
}
