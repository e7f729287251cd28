package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/weftnet/weft/subnet/subnetfile"
)

// An IPv6 pool hands out ::2 upward (::0, the gateway ::1 and the last
// address are not), wraps around, and counts its size without overflow.
func TestPoolIPv6(t *testing.T) {
	p := mustPool(t, "fd10:244:0:7::1/125")
	if !p.Is6() || p.Size() != 5 {
		t.Fatalf("pool %+v size %d, want IPv6 and 5", p, p.Size())
	}
	var got []string
	addr := p.First()
	for range p.Size() + 1 {
		got = append(got, addr.String())
		addr = p.Next(addr)
	}
	want := "[fd10:244:0:7::2 fd10:244:0:7::3 fd10:244:0:7::4 fd10:244:0:7::5 fd10:244:0:7::6 fd10:244:0:7::2]"
	if fmt.Sprint(got) != want {
		t.Fatalf("walk %v, want %s", got, want)
	}
	for _, a := range []string{"fd10:244:0:7::", "fd10:244:0:7::1", "fd10:244:0:7::7", "fd10:244:0:8::2", "10.244.7.2"} {
		if p.Contains(netip.MustParseAddr(a)) {
			t.Errorf("pool hands out %s", a)
		}
	}
	if p := mustPool(t, "fd10:244:0:7::1/64"); p.Size() != math.MaxUint64 || p.First().String() != "fd10:244:0:7::2" {
		t.Fatalf("/64: size %d first %s", p.Size(), p.First())
	}
	if p := mustPool(t, "fd10:244::1/56"); p.Size() != math.MaxUint64 {
		t.Fatalf("/56: size %d", p.Size())
	}
}

// A dual-stack attachment holds one file per family; each family keeps its
// own round-robin position; Lookup and Release see both; a full IPv6 pool
// is ErrPoolExhausted without walking it, and a /64 never needs more than
// one try per allocation made.
func TestStoreDualStack(t *testing.T) {
	dir := t.TempDir()
	v4, v6 := mustPool(t, "10.244.7.1/24"), mustPool(t, "fd10:244:0:7::1/64")
	s, err := OpenLockedStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := Attachment{ContainerID: "dual", IfName: "eth0"}
	got4, err := s.Allocate(a, v4)
	if err != nil {
		t.Fatal(err)
	}
	got6, err := s.Allocate(a, v6)
	if err != nil {
		t.Fatal(err)
	}
	if got4.String() != "10.244.7.2" || got6.String() != "fd10:244:0:7::2" {
		t.Fatalf("first addresses %s %s", got4, got6)
	}
	data, err := os.ReadFile(filepath.Join(dir, "fd10:244:0:7::2"))
	if err != nil || string(data) != "dual\r\neth0" {
		t.Fatalf("IPv6 record: %q %v", data, err)
	}
	for file, want := range map[string]string{lastIPFile: "10.244.7.2", lastIPv6File: "fd10:244:0:7::2"} {
		if data, err := os.ReadFile(filepath.Join(dir, file)); err != nil || string(data) != want {
			t.Fatalf("%s: %q %v, want %s", file, data, err, want)
		}
	}
	held, err := s.Lookup(a)
	if err != nil || len(held) != 2 {
		t.Fatalf("Lookup: %v %v", held, err)
	}
	b := Attachment{ContainerID: "next", IfName: "eth0"}
	if n, err := s.Allocate(b, v6); err != nil || n.String() != "fd10:244:0:7::3" {
		t.Fatalf("next IPv6: %s %v", n, err)
	}
	freed, err := s.Release(a)
	if err != nil || len(freed) != 2 {
		t.Fatalf("Release: %v %v", freed, err)
	}
	// Round robin per family: the freed ::2 is not handed out next.
	if n, err := s.Allocate(a, v6); err != nil || n.String() != "fd10:244:0:7::4" {
		t.Fatalf("IPv6 after release: %s %v", n, err)
	}

	small := mustPool(t, "fd10:244:0:9::1/126") // one usable address: ::2
	if n, err := s.Allocate(Attachment{ContainerID: "c1", IfName: "eth0"}, small); err != nil || n.String() != "fd10:244:0:9::2" {
		t.Fatalf("small pool: %s %v", n, err)
	}
	_, err = s.Allocate(Attachment{ContainerID: "c2", IfName: "eth0"}, small)
	if !errors.Is(err, ErrPoolExhausted) || !strings.Contains(err.Error(), "fd10:244:0:9::/126 (1 usable addresses, all allocated)") {
		t.Fatalf("full IPv6 pool: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "fd10:244:0:9::3")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the full pool's last address was handed out: %v", err)
	}
}

// A store written before IPv6 (IPv4 files and last_reserved_ip.0 only)
// reads as before and takes IPv6 allocations beside its IPv4 ones.
func TestStoreWithoutIPv6StillReads(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"10.244.7.2": "old\r\neth0", "10.244.7.3": "other\r\neth0", lastIPFile: "10.244.7.3", lockFileName: "",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := OpenLockedStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	all, err := s.List()
	if err != nil || len(all) != 2 || all[netip.MustParseAddr("10.244.7.2")] != (Attachment{"old", "eth0"}) {
		t.Fatalf("List: %v %v", all, err)
	}
	if n, err := s.Allocate(Attachment{"new", "eth0"}, mustPool(t, "10.244.7.1/24")); err != nil || n.String() != "10.244.7.4" {
		t.Fatalf("IPv4 after the old position: %s %v", n, err)
	}
	if n, err := s.Allocate(Attachment{"new", "eth0"}, mustPool(t, "fd10:244:0:7::1/64")); err != nil || n.String() != "fd10:244:0:7::2" {
		t.Fatalf("first IPv6 in an old store: %s %v", n, err)
	}
	if owner, held, err := HeldBy(dir, netip.MustParseAddr("fd10:244:0:7::2")); err != nil || !held || owner != (Attachment{"new", "eth0"}) {
		t.Fatalf("HeldBy IPv6: %v %v %v", owner, held, err)
	}
}

var (
	dualEnv = subnetfile.Env{
		Network: netip.MustParsePrefix("10.244.0.0/16"), Subnet: netip.MustParsePrefix("10.244.7.1/24"),
		IPv6Network: netip.MustParsePrefix("fd10:244::/56"), IPv6Subnet: netip.MustParsePrefix("fd10:244:0:7::1/64"),
		MTU: 1450,
	}
	v6OnlyEnv = subnetfile.Env{
		IPv6Network: netip.MustParsePrefix("fd10:244::/56"), IPv6Subnet: netip.MustParsePrefix("fd10:244:0:7::1/64"),
		MTU: 1450,
	}
	v4OnlyEnv = subnetfile.Env{
		Network: netip.MustParsePrefix("10.244.0.0/16"), Subnet: netip.MustParsePrefix("10.244.7.1/24"), MTU: 1450,
	}
)

func mustConf(t *testing.T, extra string) *NetConf {
	t.Helper()
	conf, err := ParseConfig([]byte(`{"cniVersion":"1.0.0","name":"n","type":"weft"` + extra + `}`))
	if err != nil {
		t.Fatal(err)
	}
	return conf
}

func routeStrings(routes []*types.Route) string {
	var out []string
	for _, r := range routes {
		out = append(out, r.Dst.String()+" via "+r.GW.String())
	}
	return strings.Join(out, ", ")
}

// Each family gets its overlay network and (isDefaultGateway) its default
// route via its own gateway; configured routes of either family take the
// gateway of theirs; a route of a family the network lacks is an error.
func TestContainerRoutesBothFamilies(t *testing.T) {
	conf := mustConf(t, `,"routes":[{"dst":"192.0.2.0/24"},{"dst":"2001:db8:1::/48"},{"dst":"2001:db8:2::/48","gw":"fd10:244:0:7::99"}]`)
	routes, err := containerRoutes(conf, dualEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := "10.244.0.0/16 via 10.244.7.1, 0.0.0.0/0 via 10.244.7.1, fd10:244::/56 via fd10:244:0:7::1, ::/0 via fd10:244:0:7::1, " +
		"192.0.2.0/24 via 10.244.7.1, 2001:db8:1::/48 via fd10:244:0:7::1, 2001:db8:2::/48 via fd10:244:0:7::99"
	if got := routeStrings(routes); got != want {
		t.Fatalf("routes\n%s\nwant\n%s", got, want)
	}
	noDefault := mustConf(t, `,"isDefaultGateway":false`)
	if routes, err := containerRoutes(noDefault, v6OnlyEnv); err != nil || routeStrings(routes) != "fd10:244::/56 via fd10:244:0:7::1" {
		t.Fatalf("IPv6 only without default: %s %v", routeStrings(routes), err)
	}
	if _, err := containerRoutes(conf, v4OnlyEnv); err == nil || !strings.Contains(err.Error(), `routes[1]`) || !strings.Contains(err.Error(), "no IPv6") {
		t.Fatalf("IPv6 route on an IPv4-only network: %v", err)
	}
	if _, err := containerRoutes(conf, v6OnlyEnv); err == nil || !strings.Contains(err.Error(), `routes[0]`) || !strings.Contains(err.Error(), "no IPv4") {
		t.Fatalf("IPv4 route on an IPv6-only network: %v", err)
	}
	for _, bad := range []struct{ routes, want string }{
		{`[{"dst":"2001:db8::/32","gw":"10.0.0.1"}]`, "gw 10.0.0.1 is IPv4 but dst 2001:db8::/32 is IPv6"},
		{`[{"dst":"10.0.0.0/8","gw":"fd00::1"}]`, "gw fd00::1 is IPv6 but dst 10.0.0.0/8 is IPv4"},
		{`[{"dst":"fe80::/10%eth0"}]`, "not an IPv4 or IPv6 CIDR"},
		{`[{"dst":"::ffff:10.0.0.0/104"}]`, "not an IPv4 or IPv6 CIDR"},
		{`[{"dst":"fd00::/8","gw":"fd00::1%eth0"}]`, "not an IP address"},
	} {
		_, err := ParseConfig([]byte(`{"cniVersion":"1.0.0","name":"n","type":"weft","routes":` + bad.routes + `}`))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("routes %s: %v, want %q", bad.routes, err, bad.want)
		}
	}
}

// Static addresses: one of each family from any source, sources agreeing
// per family; two of one family, a mapped address, a family the network
// lacks or another prefix length are refused, naming the source.
func TestRequestedAddressBothFamilies(t *testing.T) {
	conf := mustConf(t, `,"runtimeConfig":{"ips":["10.244.7.9/24","fd10:244:0:7::9"]},"args":{"cni":{"ips":["fd10:244:0:7::9/64"]}}`)
	req, err := requestedAddress(conf, "IP=10.244.7.9")
	if err != nil {
		t.Fatal(err)
	}
	if req.IP.String() != "10.244.7.9" || req.IP6.String() != "fd10:244:0:7::9" || req.IPFrom != "CNI_ARGS IP" || req.IP6From != "args.cni" {
		t.Fatalf("request %+v", req)
	}
	if err := req.checkSubnets(dualEnv); err != nil {
		t.Fatal(err)
	}
	if err := req.checkSubnets(v4OnlyEnv); err == nil || !strings.Contains(err.Error(), "asks for IPv6 address fd10:244:0:7::9 but this node's network has no IPv6") {
		t.Fatalf("IPv6 static on an IPv4 network: %v", err)
	}
	if err := req.checkSubnets(v6OnlyEnv); err == nil || !strings.Contains(err.Error(), "IPv6-only") {
		t.Fatalf("IPv4 static on an IPv6-only network: %v", err)
	}
	for _, tc := range []struct{ conf, args, want string }{
		{`,"runtimeConfig":{"ips":["fd10:244:0:7::9","fd10:244:0:7::8"]}`, "", "two IPv6 addresses"},
		{`,"runtimeConfig":{"ips":["10.244.7.9","10.244.7.8"]}`, "", "two IPv4 addresses"},
		{`,"runtimeConfig":{"ips":["10.244.7.9","fd10:244:0:7::9","fd10:244:0:7::8"]}`, "", "asks for 3 addresses"},
		{`,"runtimeConfig":{"ips":["::ffff:10.244.7.9"]}`, "", "IPv4-mapped"},
		{`,"runtimeConfig":{"ips":["fe80::9%eth0"]}`, "", "is not an IP address"},
		{`,"runtimeConfig":{"ips":["fd10:244:0:7::9"]}`, "IP=fd10:244:0:7::8", `"CNI_ARGS IP": asks for fd10:244:0:7::8 but runtimeConfig asks for fd10:244:0:7::9`},
	} {
		_, err := requestedAddress(mustConf(t, tc.conf), tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %s: %v, want %q", tc.conf, tc.args, err, tc.want)
		}
	}
	wrongLen, err := requestedAddress(mustConf(t, `,"runtimeConfig":{"ips":["fd10:244:0:7::9/56"]}`), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := wrongLen.checkSubnets(dualEnv); err == nil || !strings.Contains(err.Error(), "asks for fd10:244:0:7::9/56 but this node's subnet is fd10:244:0:7::/64") {
		t.Fatalf("IPv6 static with another length: %v", err)
	}
}

// The result lists both addresses on the container interface with their
// gateways, IPv4 first, and converts to older versions with "version".
func TestBuildResultBothFamilies(t *testing.T) {
	res, err := buildResult(attachmentResult{
		bridgeName: "weftbr0", hostName: "wv1", ctrName: "eth0", sandbox: "/run/netns/x",
		ips: []resultIP{
			{netip.MustParsePrefix("10.244.7.2/24"), netip.MustParseAddr("10.244.7.1")},
			{netip.MustParsePrefix("fd10:244:0:7::2/64"), netip.MustParseAddr("fd10:244:0:7::1")},
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.IPs) != 2 || res.IPs[0].Address.String() != "10.244.7.2/24" || res.IPs[1].Address.String() != "fd10:244:0:7::2/64" ||
		res.IPs[1].Gateway.String() != "fd10:244:0:7::1" || *res.IPs[1].Interface != 2 {
		t.Fatalf("ips %+v %+v", res.IPs[0], res.IPs[1])
	}
	old, err := res.GetAsVersion("0.4.0")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(old)
	if !strings.Contains(string(data), `"version":"6","interface":2,"address":"fd10:244:0:7::2/64","gateway":"fd10:244:0:7::1"`) {
		t.Fatalf("0.4.0 result: %s", data)
	}
}

// CHECK's family test: an address of each family of the network, inside
// the node's subnet; an address of a family it lacks, or outside the
// subnet (renumbered), is reported.
func TestCheckFamilies(t *testing.T) {
	ipc := func(s string) *current.IPConfig {
		p := netip.MustParsePrefix(s)
		return &current.IPConfig{Address: *addrToIPNet(p.Addr(), p.Bits())}
	}
	both := []*current.IPConfig{ipc("10.244.7.2/24"), ipc("fd10:244:0:7::2/64")}
	if err := checkFamilies(dualEnv, both); err != nil {
		t.Fatal(err)
	}
	if err := checkFamilies(v6OnlyEnv, both[1:]); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env  subnetfile.Env
		ips  []*current.IPConfig
		want string
	}{
		{dualEnv, both[:1], "no IPv6 address but this node's network has IPv6 (subnet fd10:244:0:7::/64)"},
		{dualEnv, both[1:], "no IPv4 address"},
		{v4OnlyEnv, both, "has IPv6 address fd10:244:0:7::2 but this node's network has no IPv6"},
		{dualEnv, []*current.IPConfig{both[0], ipc("fd10:244:0:9::2/64")}, "fd10:244:0:9::2 is outside this node's subnet fd10:244:0:7::/64"},
	} {
		if err := checkFamilies(tc.env, tc.ips); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.ips, err, tc.want)
		}
	}
}
