package vxlan

import (
	"encoding/json"
	"net/netip"
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
// node's own IPv6 MAC skipped with their reason; never direct.
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
	peers, skips := PeersOf6(leases, Config{VNI: 1, Port: DefaultPort, DirectRouting: true}, own)
	if len(peers) != 1 || peers[0].Subnet != netip.MustParsePrefix("fd10:244:0:2::/64") || peers[0].PublicIP != netip.MustParseAddr("2001:db8::2") ||
		peers[0].Direct || peers[0].VtepMAC != (MAC{0x0a, 0, 0, 0, 1, 2}) {
		t.Fatalf("peers %+v", peers)
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
