package wireguard

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/weftnet/weft/backend"
	"github.com/weftnet/weft/subnet"
)

// dualLease is a wireguard lease with the given subnets (either may be "")
// and public addresses (either may be "").
func dualLease(sub, sub6, ip, ip6 string, key [32]byte) subnet.Lease {
	var v4 netip.Addr
	if ip != "" {
		v4 = netip.MustParseAddr(ip)
	}
	l := subnet.Lease{Attrs: subnet.NewWireGuardLeaseAttrs(v4, 51820, key)}
	l.Attrs.PublicIPv6 = ip6
	if sub != "" {
		l.Subnet = netip.MustParsePrefix(sub)
	}
	if sub6 != "" {
		l.IPv6Subnet = netip.MustParsePrefix(sub6)
		l.Attrs.BackendV6Data = l.Attrs.BackendData
	}
	return l
}

// Issue 21 on wireguard: a peer's allowed IPs are its subnets of both
// families; its endpoint is PublicIP or PublicIPv6 as the Mode chooses
// (flannel v0.28.10's choice); a lease of an IPv6-only network is keyed,
// configured and removed by its IPv6 subnet.
func TestPeerSetDualStack(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, b, c := testKey(2), testKey(3), testKey(4)
	dual := dualLease("10.244.2.0/24", "fd00:0:0:2::/64", "192.0.2.2", "2001:db8::2", a)
	v6node := dualLease("10.244.3.0/24", "fd00:0:0:3::/64", "", "2001:db8::3", b) // an IPv6-only underlay
	privateV4 := dualLease("10.244.4.0/24", "fd00:0:0:4::/64", "10.0.0.4", "2001:db8::4", c)

	for _, tc := range []struct {
		name string
		via  underlay
		want map[string]string // public key byte -> endpoint ("" = left out)
	}{
		{"separate, dual-stack node", underlay{mode: ModeSeparate, has4: true, has6: true},
			map[string]string{"2": "192.0.2.2:51820", "3": "[2001:db8::3]:51820", "4": "10.0.0.4:51820"}},
		{"separate, IPv4-only node", underlay{mode: ModeSeparate, has4: true},
			map[string]string{"2": "192.0.2.2:51820", "3": "", "4": "10.0.0.4:51820"}},
		{"ipv4", underlay{mode: ModeIPv4, has4: true, has6: true},
			map[string]string{"2": "192.0.2.2:51820", "3": "", "4": "10.0.0.4:51820"}},
		{"ipv6", underlay{mode: ModeIPv6, has4: true, has6: true},
			map[string]string{"2": "[2001:db8::2]:51820", "3": "[2001:db8::3]:51820", "4": "[2001:db8::4]:51820"}},
		{"auto, public IPv6 here", underlay{mode: ModeAuto, has4: true, has6: true, public6: true},
			map[string]string{"2": "192.0.2.2:51820", "3": "[2001:db8::3]:51820", "4": "[2001:db8::4]:51820"}},
		{"auto, private IPv6 here", underlay{mode: ModeAuto, has4: true, has6: true},
			map[string]string{"2": "192.0.2.2:51820", "3": "[2001:db8::3]:51820", "4": "10.0.0.4:51820"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newPeerSet(testKey(1), 0, [32]byte{}, log)
			s.via = tc.via
			conf := s.apply([]subnet.Lease{dual, v6node, privateV4}, nil)
			for k, ep := range tc.want {
				key := map[string][32]byte{"2": a, "3": b, "4": c}[k]
				has := strings.Contains(conf, "public_key="+hexKey(key)+"\n")
				if ep == "" {
					if has {
						t.Errorf("peer %s configured, want it left out:\n%s", k, conf)
					}
					continue
				}
				if !has || !strings.Contains(conf, "public_key="+hexKey(key)+"\nendpoint="+ep+"\n") {
					t.Errorf("peer %s: want endpoint %s:\n%s", k, ep, conf)
				}
			}
			// Both families' subnets are each peer's allowed IPs.
			if !strings.Contains(conf, "replace_allowed_ips=true\nallowed_ip=10.244.2.0/24\nallowed_ip=fd00:0:0:2::/64\n") {
				t.Errorf("allowed IPs of a dual-stack peer:\n%s", conf)
			}
		})
	}

	// An IPv6-only network: leases with an IPv6 subnet alone.
	s := newPeerSet(testKey(1), 0, [32]byte{}, log)
	s.via = underlay{mode: ModeSeparate, has6: true}
	only6 := dualLease("", "fd00:0:0:5::/64", "", "2001:db8::5", a)
	conf := s.apply([]subnet.Lease{only6}, nil)
	if want := "public_key=" + hexKey(a) + "\nendpoint=[2001:db8::5]:51820\npersistent_keepalive_interval=0\nreplace_allowed_ips=true\nallowed_ip=fd00:0:0:5::/64\n"; conf != want {
		t.Fatalf("IPv6-only lease:\n%s\nwant:\n%s", conf, want)
	}
	if l := s.list(); len(l) != 1 || l[0].IPv6Subnet != only6.IPv6Subnet || l[0].Subnet.IsValid() || l[0].Endpoint != "[2001:db8::5]:51820" {
		t.Errorf("list %+v", l)
	}
	conf = s.apply(nil, []subnet.Event{{Type: subnet.EventRemoved, Lease: subnet.Lease{IPv6Subnet: only6.IPv6Subnet}}})
	if conf != "public_key="+hexKey(a)+"\nremove=true\n" {
		t.Errorf("removal of an IPv6-only lease: %q", conf)
	}
}

// This node's lease in a dual-stack network (Mode separate, the default):
// PublicIPv6 beside flannel's IPv4 fields, no BackendV6Data (see
// TestLeaseAttrsSeparateMode); on an IPv6-only underlay no PublicIP. The
// device MTU leaves room for an IPv6 outer header when peers may be
// reached over IPv6.
func TestLeaseAttrsDualStack(t *testing.T) {
	cfg, err := subnet.ParseConfig([]byte(`{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/48","Backend":{"Type":"wireguard"}}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		ip, ip6 string
		mtu     int
	}{
		{"dual-stack underlay", "192.0.2.1", "2001:db8::1", 1440},
		{"IPv6-only underlay", "", "2001:db8::1", 1420},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := backend.Underlay{Name: "eth0", MTU: 1500}
			if tc.ip != "" {
				u.PublicIP = netip.MustParseAddr(tc.ip)
			}
			u.PublicIPv6 = netip.MustParseAddr(tc.ip6)
			be, err := New(backend.Node{Config: cfg, Underlay: u, Options: backend.Options{StateDir: t.TempDir()},
				Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			attrs, err := be.LeaseAttrs()
			if err != nil {
				t.Fatal(err)
			}
			if attrs.PublicIP != tc.ip || attrs.PublicIPv6 != tc.ip6 || attrs.BackendV6Data != nil {
				t.Errorf("attrs %+v", attrs)
			}
			var d struct {
				PublicKey string
				Port      int
			}
			if err := json.Unmarshal(attrs.BackendData, &d); err != nil || d.Port != 51820 || len(d.PublicKey) != 44 {
				t.Errorf("BackendData %s: %v", attrs.BackendData, err)
			}
			if got := be.MTU(); got != tc.mtu {
				t.Errorf("MTU %d, want %d", got, tc.mtu)
			}
		})
	}
}

// Mode separate (flannel's default) runs, in flanneld, a second device for
// IPv6 on ListenPortV6, configured from BackendV6Data. weft's one device
// cannot be that device: on a dual-stack network weft publishes no
// BackendV6Data in this mode (a flanneld node then leaves weft out of its
// IPv6 device rather than handshaking with weft's device under the key
// its IPv4 device uses, which moved weft's endpoint for it and lost the
// IPv4 traffic); the other modes, where flanneld runs one device and takes
// the key and IPv6 port from BackendV6Data, and an IPv6-only network
// (flanneld's only device is the IPv6 one) keep it, with weft's port.
func TestLeaseAttrsSeparateMode(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		v6Data       bool
	}{
		{"dual stack, separate (default)", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/48","Backend":{"Type":"wireguard"}}`, false},
		{"dual stack, separate, ListenPortV6", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/48","Backend":{"Type":"wireguard","Mode":"separate","ListenPortV6":51821}}`, false},
		{"dual stack, auto", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/48","Backend":{"Type":"wireguard","Mode":"auto"}}`, true},
		{"dual stack, ipv6", `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/48","Backend":{"Type":"wireguard","Mode":"ipv6"}}`, true},
		{"IPv6 only, separate", `{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd00::/48","Backend":{"Type":"wireguard"}}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := subnet.ParseConfig([]byte(tc.config))
			if err != nil {
				t.Fatal(err)
			}
			u := backend.Underlay{Name: "eth0", MTU: 1500, PublicIP: netip.MustParseAddr("192.0.2.1"), PublicIPv6: netip.MustParseAddr("2001:db8::1")}
			be, err := New(backend.Node{Config: cfg, Underlay: u, Options: backend.Options{StateDir: t.TempDir()},
				Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			attrs, err := be.LeaseAttrs()
			if err != nil {
				t.Fatal(err)
			}
			if err := attrs.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := attrs.BackendV6Data != nil; got != tc.v6Data {
				t.Fatalf("BackendV6Data %s, want one: %v", attrs.BackendV6Data, tc.v6Data)
			}
			if tc.v6Data && string(attrs.BackendV6Data) != string(attrs.BackendData) {
				t.Errorf("BackendV6Data %s, want BackendData's key and port %s", attrs.BackendV6Data, attrs.BackendData)
			}
			if attrs.PublicIPv6 != "2001:db8::1" {
				t.Errorf("PublicIPv6 %q", attrs.PublicIPv6)
			}
		})
	}
}
