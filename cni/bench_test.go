//go:build !unit

package cni_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/weftnet/weft/cni"
)

// BenchmarkAddDel measures one ADD plus one DEL by the plugin binary
// (process start, namespace switch, veth pair, bridge port, address,
// routes, IPAM files) run through `ip netns exec`.
func BenchmarkAddDel(b *testing.B) {
	h := newHost(b, "10.244.7.1/24", nil)
	ctr := newNetns(b, "wtc")
	conf := h.confJSON(b, "1.1.0", nil)
	b.ResetTimer()
	for i := range b.N {
		call := pluginCall{command: "ADD", containerID: fmt.Sprintf("bench-%d", i), netns: ctr.path(), ifname: "eth0", stdin: conf, inNetns: &h.ns}
		if _, perr := invoke(b, call); perr != nil {
			b.Fatalf("ADD: %+v", perr)
		}
		call.command = "DEL"
		if _, perr := invoke(b, call); perr != nil {
			b.Fatalf("DEL: %+v", perr)
		}
	}
}

// BenchmarkStoreAllocateRelease measures the on-disk IPAM alone.
func BenchmarkStoreAllocateRelease(b *testing.B) {
	s, err := cni.OpenStore(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	pool, err := cni.NewPool(netip.MustParsePrefix("10.244.7.1/24"))
	if err != nil {
		b.Fatal(err)
	}
	a := cni.Attachment{ContainerID: "bench", IfName: "eth0"}
	b.ResetTimer()
	for range b.N {
		if err := s.Lock(); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Allocate(a, pool); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Release(a); err != nil {
			b.Fatal(err)
		}
		if err := s.Unlock(); err != nil {
			b.Fatal(err)
		}
	}
}
