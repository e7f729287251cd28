//go:build !unit

package cni_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 11, item 10: the subnet file is input. A device, an oversized file,
// an MTU no outer packet can carry, or a subnet that holds an address of
// another interface of the host is a clear error; ADD allocates nothing.
func TestSubnetFileIsCheckedInput(t *testing.T) {
	t.Parallel()
	h := newHost(t, "10.244.7.1/24", nil)
	ctr := newNetns(t, "wtc")
	// An address of another interface inside 10.244.9.0/24 (a VPN, say).
	h.ns.exec(t, "ip", "addr", "add", "10.244.9.77/32", "dev", "lo")
	h.ns.exec(t, "ip", "addr", "add", "fd10:244:0:9::77/128", "dev", "lo", "nodad")
	write := func(name, content string) string {
		p := filepath.Join(h.dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct{ name, subnetFile, want string }{
		{"device", "/dev/zero", "not a regular file"},
		{"huge file", write("huge.env", subnetEnv("10.244.7.1/24")+"#"+strings.Repeat("x", 64<<10)+"\n"), "larger than 4096 bytes"},
		{"mtu above the outer packet", write("mtu.env", strings.Replace(subnetEnv("10.244.7.1/24"), "1468", "65535", 1)), "WEFT_MTU 65535 out of range"},
		{"subnet holds a host address", write("overlap.env", subnetEnv("10.244.9.1/24")), "overlaps address 10.244.9.77/32 of interface lo"},
		{"one family of a dual-stack network", write("half.env", subnetEnv("10.244.7.1/24")+"WEFT_IPV6_NETWORK=fd10:244::/56\n"), "WEFT_IPV6_SUBNET missing (WEFT_IPV6_NETWORK is fd10:244::/56)"},
		{"IPv6 subnet holds a host address", write("overlap6.env", subnetEnv("10.244.7.1/24")+"WEFT_IPV6_NETWORK=fd10:244::/56\nWEFT_IPV6_SUBNET=fd10:244:0:9::1/64\n"), "overlaps address fd10:244:0:9::77/128 of interface lo"},
		{"IPv6 subnet outside its network", write("outside6.env", subnetEnv("10.244.7.1/24")+"WEFT_IPV6_NETWORK=fd10:244::/56\nWEFT_IPV6_SUBNET=fd11::1/64\n"), "WEFT_IPV6_SUBNET fd11::1/64 is not inside WEFT_IPV6_NETWORK fd10:244::/56"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, perr := invoke(t, pluginCall{command: "ADD", containerID: "ctr-subnet-file", netns: ctr.path(), ifname: "eth0",
				stdin: h.confJSON(t, "1.1.0", map[string]any{"subnetFile": tc.subnetFile}), inNetns: &h.ns})
			if perr == nil {
				t.Fatalf("ADD succeeded: %s", out)
			}
			if !strings.Contains(perr.Msg+" "+perr.Details, tc.want) {
				t.Fatalf("got code %d msg %q; want %q", perr.Code, perr.Msg, tc.want)
			}
		})
	}
	if got := h.allocations(t); len(got) != 0 {
		t.Fatalf("failed ADDs allocated addresses: %v", got)
	}
	// The same host with a sound file attaches the container.
	if _, perr := invoke(t, pluginCall{command: "ADD", containerID: "ctr-subnet-file", netns: ctr.path(), ifname: "eth0",
		stdin: h.confJSON(t, "1.1.0", nil), inNetns: &h.ns}); perr != nil {
		t.Fatalf("ADD with the sound subnet file: %+v", perr)
	}
}
