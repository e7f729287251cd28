package subnetfile

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteReadRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "weft", "subnet.env")
	want := Env{
		Network: netip.MustParsePrefix("10.244.0.0/16"),
		Subnet:  netip.MustParsePrefix("10.244.7.1/24"),
		MTU:     1468,
		IPMasq:  true,
	}
	if err := Write(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("read %+v, wrote %+v", got, want)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

func TestReadMissingIsNotExist(t *testing.T) {
	_, err := Read(filepath.Join(t.TempDir(), "nope.env"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("want an os.ErrNotExist error, got %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	good := "WEFT_NETWORK=10.244.0.0/16\nWEFT_SUBNET=10.244.7.1/24\nWEFT_MTU=1468\nWEFT_IPMASQ=false\n"
	if _, err := Parse([]byte("# comment\n\n" + good + "FLANNEL_OTHER=1\n")); err != nil {
		t.Fatalf("valid file with comment and unknown key: %v", err)
	}
	for _, tc := range []struct{ name, data, want string }{
		{"no equals", "WEFT_NETWORK\n", "expected KEY=VALUE"},
		{"bad network", strings.Replace(good, "10.244.0.0/16", "10.244.0.0", 1), "WEFT_NETWORK"},
		{"bad mtu", strings.Replace(good, "1468", "big", 1), "WEFT_MTU"},
		{"tiny mtu", strings.Replace(good, "1468", "100", 1), "out of range"},
		{"bad bool", strings.Replace(good, "false", "maybe", 1), "WEFT_IPMASQ"},
		{"missing subnet", strings.Replace(good, "WEFT_SUBNET=10.244.7.1/24\n", "", 1), "WEFT_SUBNET missing"},
		{"subnet outside", strings.Replace(good, "10.244.7.1/24", "10.9.7.1/24", 1), "not inside"},
		{"ipv6", strings.Replace(good, "10.244.0.0/16", "fd00::/64", 1), "IPv4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want error containing %q, got %v", tc.want, err)
			}
		})
	}
}

func TestWriteRefusesInvalid(t *testing.T) {
	path := filepath.Join(t.TempDir(), "subnet.env")
	if err := Write(path, Env{MTU: 1468}); err == nil {
		t.Fatal("wrote an empty env")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("invalid write left a file: %v", err)
	}
}

func TestWriteFlannel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "flannel", "subnet.env")
	e := Env{
		Network: netip.MustParsePrefix("10.244.0.0/16"),
		Subnet:  netip.MustParsePrefix("10.244.7.1/24"),
		MTU:     1468,
		IPMasq:  true,
	}
	if err := WriteFlannel(path, e); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\nFLANNEL_MTU=1468\nFLANNEL_IPMASQ=true\n"
	if string(data) != want {
		t.Fatalf("flannel file:\n%s\nwant:\n%s", data, want)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil || len(entries) != 1 {
		t.Fatalf("directory after the atomic write: %v %v (want only subnet.env)", entries, err)
	}
	if err := WriteFlannel(path, Env{}); err == nil {
		t.Fatal("WriteFlannel accepted an invalid Env")
	}
}

// flanneld's subnet.env as flanneld v0.28.10 writes it parses with
// ParseFlannel; weft's keys are not flannel's.
func TestParseFlannel(t *testing.T) {
	data := "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.100.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n"
	e, err := ParseFlannel([]byte(data))
	if err != nil || e.Subnet.String() != "10.244.100.1/24" || e.MTU != 1450 || e.Network.String() != "10.244.0.0/16" || e.HasIPv6() {
		t.Fatalf("%+v %v", e, err)
	}
	if _, err := ParseFlannel([]byte("WEFT_NETWORK=10.244.0.0/16\nWEFT_SUBNET=10.244.7.1/24\nWEFT_MTU=1468\n")); err == nil {
		t.Fatal("weft's keys parsed as flannel's")
	}
	if _, err := Parse([]byte(data)); err == nil {
		t.Fatal("flannel's keys parsed as weft's")
	}
}

var (
	dualStack = Env{
		Network:     netip.MustParsePrefix("10.244.0.0/16"),
		Subnet:      netip.MustParsePrefix("10.244.7.1/24"),
		IPv6Network: netip.MustParsePrefix("fd10:244::/56"),
		IPv6Subnet:  netip.MustParsePrefix("fd10:244:0:7::1/64"),
		MTU:         1450,
		IPMasq:      true,
	}
	ipv6Only = Env{
		IPv6Network: netip.MustParsePrefix("fd10:244::/56"),
		IPv6Subnet:  netip.MustParsePrefix("fd10:244:0:7::1/64"),
		MTU:         1450,
	}
)

// Both files carry the IPv6 keys in the order and form flanneld v0.28.10's
// WriteSubnetFile writes them (a family the network lacks has no keys; the
// subnet is written as its first address), and read back unchanged.
func TestDualStackAndIPv6OnlyFiles(t *testing.T) {
	for _, tc := range []struct {
		name          string
		env           Env
		weft, flannel string
	}{
		{"dual stack", dualStack,
			"WEFT_NETWORK=10.244.0.0/16\nWEFT_SUBNET=10.244.7.1/24\nWEFT_IPV6_NETWORK=fd10:244::/56\nWEFT_IPV6_SUBNET=fd10:244:0:7::1/64\nWEFT_MTU=1450\nWEFT_IPMASQ=true\n",
			"FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\nFLANNEL_IPV6_NETWORK=fd10:244::/56\nFLANNEL_IPV6_SUBNET=fd10:244:0:7::1/64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"},
		{"IPv6 only", ipv6Only,
			"WEFT_IPV6_NETWORK=fd10:244::/56\nWEFT_IPV6_SUBNET=fd10:244:0:7::1/64\nWEFT_MTU=1450\nWEFT_IPMASQ=false\n",
			"FLANNEL_IPV6_NETWORK=fd10:244::/56\nFLANNEL_IPV6_SUBNET=fd10:244:0:7::1/64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			weft, flannel := filepath.Join(dir, "weft.env"), filepath.Join(dir, "flannel.env")
			if err := Write(weft, tc.env); err != nil {
				t.Fatal(err)
			}
			if err := WriteFlannel(flannel, tc.env); err != nil {
				t.Fatal(err)
			}
			for _, f := range []struct {
				path, want string
				read       func(string) (Env, error)
			}{{weft, tc.weft, Read}, {flannel, tc.flannel, ReadFlannel}} {
				data, err := os.ReadFile(f.path)
				if err != nil || string(data) != f.want {
					t.Fatalf("%s:\n%s\nwant:\n%s (%v)", f.path, data, f.want, err)
				}
				got, err := f.read(f.path)
				if err != nil || got != tc.env {
					t.Fatalf("read back %+v %v, wrote %+v", got, err, tc.env)
				}
			}
			if got := tc.env.HasIPv4(); got != tc.env.Subnet.IsValid() || !tc.env.HasIPv6() {
				t.Fatalf("HasIPv4 %v HasIPv6 %v", got, tc.env.HasIPv6())
			}
		})
	}
}

// A family with only one of its keys (a lease with one family in a
// dual-stack network), a subnet outside its network, a prefix of the
// wrong family, no family at all and an MTU too small for IPv6 are errors
// naming the key; nothing is guessed.
func TestParseIPv6Errors(t *testing.T) {
	dual := string(dualStack.Marshal())
	flannel := string(dualStack.MarshalFlannel())
	for _, tc := range []struct {
		name, data, want string
		parse            func([]byte) (Env, error)
	}{
		{"IPv6 network without subnet", strings.Replace(dual, "WEFT_IPV6_SUBNET=fd10:244:0:7::1/64\n", "", 1), "WEFT_IPV6_SUBNET missing (WEFT_IPV6_NETWORK is fd10:244::/56)", Parse},
		{"IPv6 subnet without network", strings.Replace(dual, "WEFT_IPV6_NETWORK=fd10:244::/56\n", "", 1), "WEFT_IPV6_NETWORK missing", Parse},
		{"flannel IPv6 network without subnet", strings.Replace(flannel, "FLANNEL_IPV6_SUBNET=fd10:244:0:7::1/64\n", "", 1), "FLANNEL_IPV6_SUBNET missing", ParseFlannel},
		{"flannel IPv4 network without subnet", strings.Replace(flannel, "FLANNEL_SUBNET=10.244.7.1/24\n", "", 1), "FLANNEL_SUBNET missing", ParseFlannel},
		{"IPv6 subnet outside", strings.Replace(dual, "fd10:244:0:7::1/64", "fd11::1/64", 1), "WEFT_IPV6_SUBNET fd11::1/64 is not inside WEFT_IPV6_NETWORK fd10:244::/56", Parse},
		{"IPv6 subnet wider than the network", strings.Replace(dual, "fd10:244:0:7::1/64", "fd10:244::1/48", 1), "not inside", Parse},
		{"IPv4 in the IPv6 keys", strings.Replace(strings.Replace(dual, "fd10:244::/56", "10.0.0.0/8", 1), "fd10:244:0:7::1/64", "10.1.0.1/16", 1), "WEFT_IPV6_NETWORK 10.0.0.0/8: not an IPv6 prefix", Parse},
		{"IPv4-mapped", strings.Replace(strings.Replace(dual, "fd10:244::/56", "::ffff:10.0.0.0/104", 1), "fd10:244:0:7::1/64", "::ffff:10.1.0.1/112", 1), "not an IPv6 prefix", Parse},
		{"IPv6 in the IPv4 keys", strings.Replace(dual, "WEFT_SUBNET=10.244.7.1/24", "WEFT_SUBNET=fd10:244:0:7::1/64", 1), "not an IPv4 prefix", Parse},
		{"bad IPv6 prefix", strings.Replace(dual, "fd10:244::/56", "fd10:244::", 1), "line 3: WEFT_IPV6_NETWORK", Parse},
		{"no family", "WEFT_MTU=1450\n", "no subnet of either family", Parse},
		{"flannel no family", "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n", "FLANNEL_NETWORK and FLANNEL_SUBNET missing", ParseFlannel},
		{"MTU below IPv6's minimum", strings.Replace(dual, "WEFT_MTU=1450", "WEFT_MTU=1279", 1), "WEFT_MTU 1279 is below 1280", Parse},
		{"flannel MTU below IPv6's minimum", strings.Replace(string(ipv6Only.MarshalFlannel()), "FLANNEL_MTU=1450", "FLANNEL_MTU=1000", 1), "FLANNEL_MTU 1000 is below 1280", ParseFlannel},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.parse([]byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("parse\n%s\n= %v, want an error containing %q", tc.data, err, tc.want)
			}
		})
	}
	ipv4 := dualStack
	ipv4.IPv6Network, ipv4.IPv6Subnet = netip.Prefix{}, netip.Prefix{}
	ipv4.MTU = 1000
	if err := ipv4.Validate(); err != nil {
		t.Fatalf("an IPv4-only network keeps its MTU floor of 576: %v", err)
	}
	half := dualStack
	half.IPv6Subnet = netip.Prefix{}
	path := filepath.Join(t.TempDir(), "subnet.env")
	if err := Write(path, half); err == nil || !strings.Contains(err.Error(), "WEFT_IPV6_SUBNET missing") {
		t.Fatalf("Write of a half IPv6 family: %v", err)
	}
	if err := WriteFlannel(path, half); err == nil || !strings.Contains(err.Error(), "FLANNEL_IPV6_SUBNET missing") {
		t.Fatalf("WriteFlannel of a half IPv6 family: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused write left a file: %v", err)
	}
}

// PreviousIPv6 finds the IPv6 subnet an earlier run wrote, masked, in
// weft's file or else flannel's; a file without IPv6 yields none.
func TestPreviousIPv6(t *testing.T) {
	dir := t.TempDir()
	weft, flannel := filepath.Join(dir, "weft.env"), filepath.Join(dir, "flannel.env")
	fail := func(err error) { t.Fatalf("warned: %v", err) }
	if p := PreviousIPv6(weft, flannel, fail); p.IsValid() {
		t.Fatalf("no files: %v", p)
	}
	if err := WriteFlannel(flannel, ipv6Only); err != nil {
		t.Fatal(err)
	}
	if p := PreviousIPv6(weft, flannel, fail); p.String() != "fd10:244:0:7::/64" {
		t.Fatalf("from flannel's file: %v", p)
	}
	if p := Previous(weft, flannel, fail); p.IsValid() {
		t.Fatalf("IPv4 subnet of an IPv6-only file: %v", p)
	}
	other := dualStack
	other.IPv6Subnet = netip.MustParsePrefix("fd10:244:0:9::1/64")
	if err := Write(weft, other); err != nil {
		t.Fatal(err)
	}
	if p := PreviousIPv6(weft, flannel, fail); p.String() != "fd10:244:0:9::/64" {
		t.Fatalf("weft's file comes first: %v", p)
	}
	if p := Previous(weft, flannel, fail); p.String() != "10.244.7.0/24" {
		t.Fatalf("IPv4 subnet: %v", p)
	}
}
