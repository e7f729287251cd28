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

// flanneld's subnet.env as flanneld v0.28.10 writes it (its IPv6 keys
// included) parses with ParseFlannel; weft's keys are not flannel's.
func TestParseFlannel(t *testing.T) {
	data := "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.100.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\nFLANNEL_IPV6_NETWORK=::/0\n"
	e, err := ParseFlannel([]byte(data))
	if err != nil || e.Subnet.String() != "10.244.100.1/24" || e.MTU != 1450 || e.Network.String() != "10.244.0.0/16" {
		t.Fatalf("%+v %v", e, err)
	}
	if _, err := ParseFlannel([]byte("WEFT_NETWORK=10.244.0.0/16\nWEFT_SUBNET=10.244.7.1/24\nWEFT_MTU=1468\n")); err == nil {
		t.Fatal("weft's keys parsed as flannel's")
	}
	if _, err := Parse([]byte(data)); err == nil {
		t.Fatal("flannel's keys parsed as weft's")
	}
}
